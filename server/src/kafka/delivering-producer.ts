import Kafka from 'node-rdkafka';
import { kafkaError } from '../errors/index.js';
import { enqueue, isQueueFull } from './enqueue.js';

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
 * One `send`'s records awaiting their delivery reports (each record's opaque): resolves once every
 * one is acknowledged, rejects on the first failure; reports after that are ignored.
 */
class PendingSend {
  private left: number;
  settled = false;

  constructor(count: number, private readonly resolve: () => void, private readonly reject: (err: unknown) => void) {
    this.left = count;
  }

  delivered(err: Kafka.LibrdKafkaError | null): void {
    if (this.settled) return;
    if (err) this.fail(kafkaError('delivery', err));
    else if (--this.left === 0) {
      this.settled = true;
      this.resolve();
    }
  }

  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }
}

/**
 * An idempotent producer (acks=all) whose `send` resolves only when the broker acknowledged
 * every record, so callers (HTTP ingest, the generator) answer after durability, not before.
 */
export class DeliveringProducer {
  private readonly producer: Kafka.Producer;

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
      (report.opaque as PendingSend | undefined)?.delivered(err);
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

  /**
   * Produces every record, in order; resolves when all are acknowledged, rejects on the first
   * failure. The records go to librdkafka's queue in one synchronous loop sharing one pending
   * count: promises, a retry closure and a map entry per record took a tenth of the api's busy
   * time under the ingest ramp, and half its garbage collection (--cpu-prof, docs/benchmarks.md).
   * Once the queue is full, the rest wait for room one by one (enqueue).
   */
  send(records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const pending = new PendingSend(records.length, resolve, reject);
      const timestamp = Date.now();
      for (let i = 0; i < records.length; i++) {
        const r = records[i];
        try {
          // A string key is taken as its UTF-8 bytes by node-rdkafka itself.
          this.producer.produce(r.topic, r.partition, r.value, r.key, timestamp, pending, r.headers);
        } catch (err) {
          if (isQueueFull(err)) void this.enqueueRest(records, i, pending);
          else pending.fail(err);
          return;
        }
      }
    });
  }

  /** The records from `from` on, each once the local queue has room for it (in order); stops at a failure. */
  private async enqueueRest(records: OutgoingRecord[], from: number, pending: PendingSend): Promise<void> {
    for (let i = from; i < records.length && !pending.settled; i++) {
      try {
        await enqueue(this.producer, records[i], { opaque: pending, attempts: QUEUE_FULL_ATTEMPTS });
      } catch (err) {
        pending.fail(err);
      }
    }
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => {
      this.producer.flush(10_000, () => this.producer.disconnect(() => resolve()));
    });
  }
}
