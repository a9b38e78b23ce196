/**
 * A task's progress as the aggregator keeps it across restarts: its PartitionProgress in the
 * `watermark|p` record of impression-counts (the WatermarkRecord of contracts/count-record.ts).
 * Written and read back only by the aggregator (partition-task, restore); readers downstream use
 * the record's `watermark` and `closed_through` and ignore the rest.
 */
import { encodeWatermark, type WatermarkRecord } from '../contracts/count-record.js';
import type { InputMark, OpenPeriod, PartitionProgress } from './core/types.js';

/** The record of a task's progress (key watermark|p). */
export function encodeProgress(partition: number, p: PartitionProgress, emittedAt: number): Buffer {
  return encodeWatermark({
    source_partition: partition,
    watermark: p.watermark,
    max_event_time: p.maxEventTime,
    emitted_at: emittedAt,
    closed_through: p.closedThrough,
    evicted_before: p.evictedBefore,
    source_watermark: p.sourceWatermark,
    inputs: p.inputs.map((m) => [m.watermark, m.idle ? 1 : 0, m.position]),
    window_ms: p.windowMs,
    partitions: p.partitions,
    periods_closed_before: p.periodsClosedBefore,
    open_periods: p.openPeriods.map((o) => [o.periodStart, o.firstSourceOffset, o.firstChannelOffset, o.late.map((l) => [l.advertiserId, l.originalPeriodStart, l.events])]),
  });
}

/**
 * A task's progress from its record. A record of an older version (no inputs, no frontiers) gives
 * what can be derived: nothing is known of the other inputs, the frontiers start at 0 (the restored
 * watermark recomputes them at the first drain), and the settings are the current ones.
 */
export function decodeProgress(rec: WatermarkRecord, current: { windowMs: number; partitions: number }): PartitionProgress {
  const inputs: InputMark[] = (rec.inputs ?? []).map(([watermark, idle, position]) => ({ watermark, idle: idle === 1, position: position ?? null }));
  return {
    watermark: rec.watermark,
    maxEventTime: rec.max_event_time,
    sourceWatermark: rec.source_watermark ?? 0,
    inputs,
    closedThrough: rec.closed_through ?? 0,
    evictedBefore: rec.evicted_before ?? 0,
    periodsClosedBefore: rec.periods_closed_before ?? 0,
    openPeriods: (rec.open_periods ?? []).map(([periodStart, firstSourceOffset, firstChannelOffset, late]): OpenPeriod => ({
      periodStart, firstSourceOffset, firstChannelOffset,
      late: late.map(([advertiserId, originalPeriodStart, events]) => ({ advertiserId, originalPeriodStart, events })),
    })),
    windowMs: rec.window_ms ?? current.windowMs,
    partitions: rec.partitions ?? current.partitions,
  };
}
