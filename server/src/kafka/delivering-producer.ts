import Kafka from 'node-rdkafka';
import { kafkaError } from '../errors/index.js';
import { enqueue } from './enqueue.js';

/** A full local queue is tried again this often (5 ms apart, ~2 s in all) while the poll loop drains it. */
const QUEUE_FULL_ATTEMPTS = 401;

export interface OutgoingRecord {
  topic: string;
  /** null: librdkafka's partitioner picks (murmur2_random, Java-compatible, by key). */
  partition: number | null;
  key: string | Buffer | null;
  value: Buffer | null;
  headers?: Kafka.MessageHeader[];
}

/**
 * An idempotent producer (acks=all) whose `send` resolves only when the broker acknowledged
 * every record, so callers (HTTP ingest, the generator) answer after durability, not before.
 */
export class DeliveringProducer {
  private readonly producer: Kafka.Producer;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextId = 1;

  /**
   * `pollIntervalMs`: how often delivery reports are collected; a send waits half of it on average
   * after the broker's ack (5 ms for the ingest API, whose clients wait for the answer).
   */
  constructor(brokers: string, extra: Kafka.ProducerGlobalConfig = {}, private readonly pollIntervalMs = 20) {
    this.producer = new Kafka.Producer({
      'metadata.broker.list': brokers,
      'enable.idempotence': true,
      dr_cb: true,
      'linger.ms': 5,
      'batch.num.messages': 10_000,
      'queue.buffering.max.messages': 500_000,
      log_level: 3,
      ...extra,
    }, { 'request.required.acks': -1, partitioner: 'murmur2_random' });
    this.producer.on('delivery-report', (err, report) => {
      const id = report.opaque as number;
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      if (err) p.reject(kafkaError('delivery', err));
      else p.resolve();
    });
  }

  connect(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.producer.connect({ timeout: timeoutMs }, (err) => {
        if (err) return reject(kafkaError('connect', err));
        this.producer.setPollInterval(this.pollIntervalMs);
        resolve();
      });
    });
  }

  /** Produces every record; resolves when all are acknowledged, rejects on the first failure. */
  send(records: OutgoingRecord[]): Promise<void> {
    const acks: Promise<void>[] = [];
    for (const r of records) {
      acks.push(this.produceOne(r));
    }
    return Promise.all(acks).then(() => undefined);
  }

  private produceOne(r: OutgoingRecord): Promise<void> {
    const id = this.nextId++;
    const ack = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    return enqueue(this.producer, r, { opaque: id, attempts: QUEUE_FULL_ATTEMPTS }).then(() => ack, (err: unknown) => {
      this.pending.delete(id);
      throw err;
    });
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => {
      this.producer.flush(10_000, () => this.producer.disconnect(() => resolve()));
    });
  }
}
