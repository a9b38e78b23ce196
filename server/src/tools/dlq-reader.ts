/**
 * Reads a whole topic up to its end as of the start of the read, without a consumer group
 * (assign from the beginning, random group id, no commits): the dead-letter counts for verify
 * and tests, and the tests' view of what was produced.
 */
import crypto from 'node:crypto';
import type Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { DLQ_HEADER, headerValue, NO_REASON } from '../contracts/dead-letter.js';
import { TallyError } from '../errors/index.js';
import { Consumer, OFFSET_BEGINNING, readToEnd, retry, type ReadRange } from '../kafka/index.js';

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

/**
 * Calls onMessage for every record of every partition of `topic`, from the beginning up to the
 * partition's end offset as queried at the start (or `until`; later records are not delivered).
 * (When a partition whose last offsets are transaction markers counts as read: kafka/ EndTracker.)
 */
export async function readTopicToEnd(
  brokers: string,
  topic: string,
  onMessage: (m: Kafka.Message) => void,
  opts: ReadToEndOptions = {},
): Promise<ReadToEndResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const consumer = new Consumer({
    brokers,
    groupId: `tally-reader-${crypto.randomBytes(6).toString('hex')}`,
    isolation: opts.isolation ?? 'read_committed',
    partitionEof: true,
  });
  const requestTimeout = Math.max(1000, Math.min(10_000, timeoutMs));
  await consumer.connect(requestTimeout);
  try {
    // Right after a topic is created its metadata and offsets may not be ready yet: retry until the deadline.
    const settle = <T>(what: string, attempt: () => Promise<T>): Promise<T> => retry(attempt, { what, deadline, delayMs: 200 }).catch((err: unknown) => {
      throw new TallyError(`reading ${topic}: ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err, retriable: true });
    });
    const partitions = await settle('metadata', () => consumer.partitionsOf(topic, requestTimeout));
    const ends: number[] = [];
    const ranges: ReadRange[] = [];
    for (const p of partitions) {
      const w = await settle(`end offset of partition ${p}`, () => consumer.queryWatermarkOffsets(topic, p, requestTimeout));
      ends[p] = Math.min(w.highOffset, opts.until?.get(p) ?? Infinity);
      if (ends[p] > w.lowOffset) ranges.push({ topic, partition: p, from: OFFSET_BEGINNING, end: ends[p] });
    }
    const read = await readToEnd(consumer, ranges, onMessage, { what: `${topic} within ${timeoutMs} ms`, deadline, batch: 1000, pollMs: 200 });
    return { partitions: partitions.length, messages: read.records, ends };
  } finally {
    await consumer.disconnect();
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
