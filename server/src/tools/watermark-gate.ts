/**
 * Waits until the aggregator's published watermark of every partition (the `watermark|p` records
 * of impression-counts, read_committed) is at or past a mark: what makes an old event late.
 */
import type { TallyConfig } from '../config/index.js';
import { TallyError } from '../errors/index.js';
import { checkCountRecord, type WatermarkRecord } from '../contracts/count-record.js';
import { sleep } from '../kafka/index.js';
import { readTopicToEnd } from './dlq-reader.js';

export interface WatermarkGateOptions {
  timeoutMs?: number;
  /** Called about every 5 s while waiting, with the lowest watermark so far (null: a partition never published). */
  onWait?: (lowest: number | null) => void;
}

/** Every partition's watermark records as committed, oldest first (compaction may have dropped older ones). */
export async function publishedWatermarks(config: TallyConfig): Promise<Map<number, WatermarkRecord[]>> {
  const byPartition = new Map<number, WatermarkRecord[]>();
  await readTopicToEnd(config.kafka.brokers, config.topics.counts, (m) => {
    if (!m.key?.toString().startsWith('watermark|')) return;
    const rec = checkCountRecord(m.value);
    if (rec.kind !== 'watermark') return;
    const list = byPartition.get(rec.record.source_partition) ?? [];
    list.push(rec.record);
    byPartition.set(rec.record.source_partition, list);
  });
  return byPartition;
}

/** The lowest published watermark over partitions 0 … partitions−1; null while one never published. */
export async function lowestWatermark(config: TallyConfig): Promise<number | null> {
  const byPartition = await publishedWatermarks(config);
  let lowest = Infinity;
  for (let p = 0; p < config.partitions; p++) {
    const list = byPartition.get(p);
    if (list === undefined) return null;
    lowest = Math.min(lowest, Math.max(...list.map((r) => r.watermark)));
  }
  return lowest;
}

export async function awaitWatermark(config: TallyConfig, atLeast: number, opts: WatermarkGateOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const started = Date.now();
  let told = started;
  for (;;) {
    const lowest = await lowestWatermark(config);
    if (lowest !== null && lowest >= atLeast) return;
    if (Date.now() - started > timeoutMs) {
      throw new TallyError(`no aggregator moved every partition's watermark to ${new Date(atLeast).toISOString()} within ${timeoutMs} ms `
        + `(lowest: ${lowest === null ? 'a partition never published one' : new Date(lowest).toISOString()}); late and too-late events are late only then. `
        + 'Is an aggregator running on these topics? Or generate without them (--late-within-horizon 0 --too-late 0).');
    }
    if (Date.now() - told >= 5_000) {
      told = Date.now();
      opts.onWait?.(lowest);
    }
    await sleep(250);
  }
}
