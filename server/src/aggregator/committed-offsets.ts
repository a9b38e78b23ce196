import type { Topics } from '../config/index.js';
import { retry, type Consumer } from '../kafka/index.js';
import type { Logger } from '../observability/index.js';

/** A task's committed offsets: its source partition of `impressions` and its repartition channel. */
export interface TaskOffsets { source: number; channel: number }

/**
 * The committed offsets of both inputs of each partition; a partition with none is missing.
 * read_committed makes librdkafka ask for stable offsets, so a pending transaction on them
 * finishes before this returns.
 */
export async function committedOffsets(consumer: Consumer, topics: Topics, partitions: number[], log: Logger): Promise<Map<number, TaskOffsets>> {
  const { impressions, repartition } = topics;
  const request = partitions.flatMap((partition) => [{ topic: impressions, partition }, { topic: repartition, partition }]);
  const list = await retry(() => consumer.committed(request, 30_000), {
    what: 'committed offsets',
    attempts: 30,
    // UNSTABLE_OFFSET_COMMIT while a previous owner's transaction resolves, or a coordinator move.
    onRetry: (err, attempt) => log.warn({ err: String(err), attempt }, 'aggregator.committed_offsets_retry'),
  });
  const out = new Map<number, TaskOffsets>();
  for (const tp of list) {
    if (tp.offset < 0) continue;
    const o = out.get(tp.partition) ?? { source: 0, channel: 0 };
    if (tp.topic === impressions) o.source = tp.offset;
    else o.channel = tp.offset;
    out.set(tp.partition, o);
  }
  return out;
}
