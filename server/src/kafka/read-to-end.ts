import type Kafka from 'node-rdkafka';
import { TallyError } from '../errors/index.js';
import type { Consumer } from './consumer.js';
import { EndTracker, type PartitionEnd } from './end-tracker.js';

/** A partition to read, from `from` (an offset, or OFFSET_BEGINNING) up to `end` (exclusive). */
export interface ReadRange extends PartitionEnd {
  from: number;
}

export interface ReadToEndOptions {
  /** What is read, for the timeout error. */
  what: string;
  /** Epoch ms after which the read stops. */
  deadline: number;
  /** At the deadline: throw a retriable TallyError naming where each partition got to (default), or return incomplete. */
  atDeadline?: 'throw' | 'return';
  /** Records per consume call (default 5,000). */
  batch?: number;
  /** consume(n)'s wait per missing record (default 50 ms): it bounds how late the deadline is noticed. */
  pollMs?: number;
}

export interface ReadToEndResult {
  /** Records delivered to onRecord. */
  records: number;
  /** Every range reached its end. */
  complete: boolean;
  /** The ranges that did not (only with atDeadline 'return'). */
  unfinished: ReadRange[];
}

/**
 * The one "read these partitions to their end" routine (restore, dead-letter reads, the pipeline
 * probe): assigns the ranges on `consumer` (connected, not subscribed), calls `onRecord` for every
 * record before each range's end — a whole batch, also when an EOF in that batch already ended
 * the read — and unassigns. Resolves with whether every range reached its end.
 */
export async function readToEnd(consumer: Consumer, ranges: ReadRange[], onRecord: (m: Kafka.Message) => void, opts: ReadToEndOptions): Promise<ReadToEndResult> {
  const tracker = new EndTracker(ranges.filter((r) => r.end > Math.max(0, r.from)));
  let records = 0;
  const result = (): ReadToEndResult => ({ records, complete: tracker.done, unfinished: ranges.filter((r) => !tracker.reachedEnd(r.topic, r.partition)) });
  if (tracker.done) return result();
  const onEof = (e: Kafka.EofEvent) => tracker.eof(e.topic, e.partition, e.offset);
  consumer.client.on('partition.eof', onEof);
  try {
    consumer.client.assign(ranges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.from })));
    while (!tracker.done) {
      if (Date.now() > opts.deadline) {
        if (opts.atDeadline === 'return') return result();
        throw new TallyError(`reading ${opts.what}: ${tracker.describePending()} not reached by the deadline`, { retriable: true });
      }
      const batch = await consumer.consume(opts.batch ?? 5_000, opts.pollMs ?? 50);
      for (const m of batch) {
        if (!tracker.record(m.topic, m.partition, m.offset)) continue;
        records++;
        onRecord(m);
      }
    }
    return result();
  } finally {
    consumer.client.removeListener('partition.eof', onEof);
    try {
      consumer.client.unassign();
    } catch { /* disconnected meanwhile */ }
  }
}
