import Kafka from 'node-rdkafka';
import { kafkaError } from '../errors/index.js';

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
        if (err) return reject(err);
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

  private produceOne(r: OutgoingRecord, attempt = 0): Promise<void> {
    const id = this.nextId++;
    const ack = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    try {
      const key = typeof r.key === 'string' ? Buffer.from(r.key) : r.key;
      this.producer.produce(r.topic, r.partition, r.value, key, Date.now(), id, r.headers);
    } catch (err) {
      this.pending.delete(id);
      // Local queue full: let the poll loop drain it, then try again.
      if (isQueueFull(err) && attempt < 200) {
        return new Promise<void>((res) => setTimeout(res, 10)).then(() => this.produceOne(r, attempt + 1));
      }
      return Promise.reject(err);
    }
    return ack;
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => {
      this.producer.flush(10_000, () => this.producer.disconnect(() => resolve()));
    });
  }
}

function isQueueFull(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: number }).code === Kafka.CODES.ERRORS.ERR__QUEUE_FULL;
}
