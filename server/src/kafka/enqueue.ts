import Kafka from 'node-rdkafka';
import type { OutgoingRecord } from './delivering-producer.js';
import { retry } from './retry.js';

/** A full queue is tried again this often: a delivery report poll frees room within a few ms. */
const QUEUE_FULL_DELAY_MS = 5;

/** librdkafka's local queue (queue.buffering.max.*) is full: produce() refuses until poll() takes delivered messages off. */
export function isQueueFull(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === Kafka.CODES.ERRORS.ERR__QUEUE_FULL;
}

/**
 * Hands `record` to librdkafka's local queue, waiting while the queue is full (a backlog produces
 * faster than the broker acknowledges): at most `attempts` tries (default: until it fits). Any
 * other refusal is thrown as librdkafka raised it. The first try is synchronous, so records are
 * queued in the order they are enqueued.
 */
export function enqueue(producer: Kafka.Producer, record: OutgoingRecord, opts: { opaque?: unknown; attempts?: number } = {}): Promise<void> {
  const key = typeof record.key === 'string' ? Buffer.from(record.key) : record.key;
  return retry(async () => {
    producer.produce(record.topic, record.partition, record.value, key, Date.now(), opts.opaque, record.headers);
  }, {
    what: `produce to ${record.topic}`, attempts: opts.attempts, delayMs: QUEUE_FULL_DELAY_MS,
    bail: (err) => !isQueueFull(err), onRetry: () => producer.poll(),
  });
}
