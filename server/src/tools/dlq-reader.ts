/**
 * Reads a whole topic up to its end as of the start of the read, without a consumer group
 * (assign from the beginning, random group id, no commits): the dead-letter counts for verify
 * and tests, and the tests' view of what was produced.
 */
import crypto from 'node:crypto';
import Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { DLQ_HEADER, headerValue, NO_REASON } from '../contracts/dead-letter.js';
import { TallyError } from '../errors/index.js';

export interface ReadToEndOptions {
  /** Give up (reject) after this long (default 30 s). */
  timeoutMs?: number;
  /** Default read_committed: only records of committed transactions. */
  isolation?: 'read_committed' | 'read_uncommitted';
  /** Stop each partition here instead of at its end (per partition; a partition missing reads to its end). */
  until?: ReadonlyMap<number, number>;
}

export interface ReadToEndResult {
  partitions: number;
  messages: number;
  /** The end offset per partition that the read went to (as of its start). */
  ends: number[];
}

const OFFSET_BEGINNING = -2;

function promisify<T>(fn: (cb: (err: Kafka.LibrdKafkaError | null | undefined, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

/**
 * Calls onMessage for every record of every partition of `topic`, from the beginning up to the
 * partition's end offset as queried at the start (or `until`; later records are not delivered).
 * With read_committed, transaction markers and aborted records occupy offsets but are never
 * delivered, so a partition is done when a delivered record reaches or passes the end offset, or
 * when librdkafka reports partition EOF at or beyond it. (A partition written by a transaction
 * every 100 ms may never report EOF: a record past the end is the only sign.)
 */
export async function readTopicToEnd(
  brokers: string,
  topic: string,
  onMessage: (m: Kafka.Message) => void,
  opts: ReadToEndOptions = {},
): Promise<ReadToEndResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const consumer = new Kafka.KafkaConsumer({
    'metadata.broker.list': brokers,
    'group.id': `tally-reader-${crypto.randomBytes(6).toString('hex')}`,
    'enable.auto.commit': false,
    'enable.partition.eof': true,
    'isolation.level': opts.isolation ?? 'read_committed',
    log_level: 3,
  }, { 'auto.offset.reset': 'earliest' });
  const requestTimeout = Math.max(1000, Math.min(10_000, timeoutMs));
  await promisify<unknown>((cb) => consumer.connect({ timeout: requestTimeout }, (err, md) => cb(err, md)));
  try {
    // Right after a topic is created its metadata and offsets may not be ready yet: retry until the deadline.
    const settle = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      for (;;) {
        try {
          return await fn();
        } catch (err) {
          if (Date.now() > deadline) throw new TallyError(`reading ${topic}: ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err, retriable: true });
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };
    const partitions = await settle('metadata', async () => {
      const md = await promisify<Kafka.Metadata>((cb) => consumer.getMetadata({ topic, timeout: requestTimeout }, (err, m) => cb(err, m)));
      const t = md.topics.find((x) => x.name === topic);
      if (!t || t.partitions.length === 0) throw new TallyError(`topic ${topic} does not exist`);
      return t.partitions.map((p) => p.id).sort((a, b) => a - b);
    });
    const ends: number[] = [];
    const pending = new Set<number>();
    for (const p of partitions) {
      const w = await settle(`end offset of partition ${p}`, () =>
        promisify<Kafka.WatermarkOffsets>((cb) => consumer.queryWatermarkOffsets(topic, p, requestTimeout, (err, o) => cb(err, o))));
      ends[p] = Math.min(w.highOffset, opts.until?.get(p) ?? Infinity);
      if (ends[p] > w.lowOffset) pending.add(p);
    }
    let messages = 0;
    if (pending.size > 0) {
      // Where each partition got to (EOF offset or last record + 1): the timeout error names it.
      const reached = new Map<number, number>();
      consumer.on('partition.eof', (e) => {
        if (e.topic !== topic) return;
        reached.set(e.partition, e.offset);
        if (e.offset >= ends[e.partition]) pending.delete(e.partition);
      });
      consumer.setDefaultConsumeTimeout(200);
      consumer.assign([...pending].map((partition) => ({ topic, partition, offset: OFFSET_BEGINNING })));
      while (pending.size > 0) {
        if (Date.now() > deadline) {
          const where = [...pending].map((p) => `${p} (at ${reached.get(p) ?? 'start'} of ${ends[p]})`).join(', ');
          throw new TallyError(`reading ${topic}: partitions ${where} did not reach their end within ${timeoutMs} ms`, { retriable: true });
        }
        const batch = await promisify<Kafka.Message[]>((cb) => consumer.consume(1000, (err, m) => cb(err, m)));
        for (const m of batch) {
          if (m.offset >= ends[m.partition]) {
            // Past the end (the end itself was a transaction marker): done, even if no EOF ever comes
            // because a producer keeps appending.
            pending.delete(m.partition);
            continue;
          }
          messages++;
          onMessage(m);
          reached.set(m.partition, m.offset + 1);
          if (m.offset + 1 >= ends[m.partition]) pending.delete(m.partition);
        }
      }
    }
    return { partitions: partitions.length, messages, ends };
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}

/**
 * Counts the committed records of the dead-letter topic by their `reason` header, reading every
 * partition to its end as of the call.
 */
export async function readDeadLetters(config: TallyConfig, opts: { timeoutMs?: number } = {}): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  await readTopicToEnd(config.kafka.brokers, config.topics.dlq, (m) => {
    const reason = headerValue(m, DLQ_HEADER.reason) ?? NO_REASON;
    counts[reason] = (counts[reason] ?? 0) + 1;
  }, { timeoutMs: opts.timeoutMs, isolation: 'read_committed' });
  return counts;
}

export interface DeadLetterDiff {
  reason: string;
  expected: number;
  actual: number;
}

/** Reasons whose counts differ (a reason missing on one side counts as 0). */
export function diffDeadLetters(expected: Record<string, number>, actual: Record<string, number>): DeadLetterDiff[] {
  const reasons = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  return reasons
    .map((reason) => ({ reason, expected: expected[reason] ?? 0, actual: actual[reason] ?? 0 }))
    .filter((d) => d.expected !== d.actual);
}
