import type { WindowRow } from '../../contracts/count-record.js';
import { ConfigError } from '../../errors/index.js';
import type { Impression } from '../../impression/types.js';
import { DedupIndex } from './dedup-index.js';
import { InputWatermarks } from './input-watermarks.js';
import { PeriodBook, periodOf } from './period-book.js';
import type {
  Changes, IdHash, InputMark, PartitionProgress, PeriodClose, ProcessOutcome, RecordOrigin, SourceStatus, WindowSettings,
} from './types.js';
import { windowStartOf } from './window.js';
import { WindowStore } from './window-store.js';

/**
 * The state store of one input partition (a Kafka Streams task's store): open tumbling windows
 * with their rows, the ids held for dedup, and the task's event time. Pure: the shell feeds it
 * records, drains what changed into one Kafka transaction per commit interval, and rebuilds it
 * from that output after a crash (restoreProgress / restoreRow / restoreDedupChunk).
 *
 * Event time (docs/architecture.md, "Event time"): the task's watermark is the minimum over its
 * inputs (InputWatermarks), recomputed at each drain; windows close, ids are forgotten and late
 * events are judged against it. Two frontiers make those decisions permanent across restarts with
 * other settings: `closedThrough` (windows ending at or before it are final) and `evictedBefore`
 * (windows starting before it are gone; their events are too_late).
 */
export class PartitionState {
  private readonly windowMs: number;
  private readonly outOfOrdernessMs: number;
  private readonly allowedLatenessMs: number;
  private readonly maxClockSkewMs: number;
  private readonly partitions: number;
  private readonly idleTimeoutMs: number;
  /** windowEnd + allowedLateness + dedupHorizon, minus windowStart: how long a window's ids live. */
  private readonly retentionMs: number;

  private readonly windows: WindowStore;
  private readonly index = new DedupIndex();
  private readonly inputs: InputWatermarks;
  private readonly periods = new PeriodBook();

  private wm = 0;
  private sourceMaxTs = 0;
  private sourceWm = 0;
  private closedThrough = 0;
  /** closedThrough as of the previous drain: what downstream believes has closed. */
  private publishedClosedThrough = 0;
  private evictedBefore = 0;
  private lastMark: InputMark | null = null;
  private lastMarkAt = 0;
  private lastProgress: PartitionProgress | null = null;
  private lastProgressAt = 0;

  constructor(readonly partition: number, settings: WindowSettings, now: number) {
    const { windowMs, outOfOrdernessMs, allowedLatenessMs, dedupHorizonMs, maxClockSkewMs, partitions, idleTimeoutMs } = settings;
    if (!Number.isSafeInteger(windowMs) || windowMs < 1) throw new RangeError(`windowMs must be a positive integer, got ${windowMs}`);
    for (const [name, v] of Object.entries({ outOfOrdernessMs, allowedLatenessMs, dedupHorizonMs, maxClockSkewMs, idleTimeoutMs })) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be an integer ≥ 0, got ${v}`);
    }
    if (!Number.isSafeInteger(partitions) || partitions < 1 || partition < 0 || partition >= partitions) {
      throw new RangeError(`partition ${partition} of ${partitions} partitions`);
    }
    this.windowMs = windowMs;
    this.outOfOrdernessMs = outOfOrdernessMs;
    this.allowedLatenessMs = allowedLatenessMs;
    this.maxClockSkewMs = maxClockSkewMs;
    this.partitions = partitions;
    this.idleTimeoutMs = idleTimeoutMs;
    this.retentionMs = windowMs + allowedLatenessMs + dedupHorizonMs;
    this.inputs = new InputWatermarks(partitions, idleTimeoutMs, now);
    if (!Number.isSafeInteger(settings.dimensionValueLimit) || settings.dimensionValueLimit < 1) {
      throw new RangeError(`dimensionValueLimit must be a positive integer, got ${settings.dimensionValueLimit}`);
    }
    this.windows = new WindowStore(partition, windowMs, settings);
  }

  // ── gauges ────────────────────────────────────────────────────────────────────────────────────

  get watermark(): number {
    return this.wm;
  }

  get maxEventTime(): number {
    return this.sourceMaxTs;
  }

  get windowsOpen(): number {
    return this.windows.size;
  }

  /** Ids held for dedup. */
  get idsHeld(): number {
    return this.windows.idsHeld;
  }

  /** Bytes of the dedup index. */
  get dedupBytes(): number {
    return this.index.byteLength;
  }

  /** Every input's mark as last drained, by source partition. */
  get inputMarks(): InputMark[] {
    return this.inputs.snapshot();
  }

  // ── input ─────────────────────────────────────────────────────────────────────────────────────

  /**
   * A valid record read from this partition's own source, whatever its home partition: it moves
   * the source's event time. False for a timestamp beyond the clock skew: it is refused at home
   * and moves nothing.
   */
  observeSourceEvent(ts: number, nowMs: number): boolean {
    if (ts > nowMs + this.maxClockSkewMs) return false;
    if (ts > this.sourceMaxTs) this.sourceMaxTs = ts;
    return true;
  }

  /** A watermark marker of source partition `source`, read on this task's repartition channel. */
  observeMarker(source: number, mark: InputMark, nowMs: number): void {
    if (source === this.partition) throw new RangeError(`a marker of partition ${source} on its own channel`);
    this.inputs.set(source, mark, nowMs);
  }

  /**
   * Counts one impression whose home partition this is. `idHash` is hashImpressionId(imp.impressionId),
   * passed in so the caller can hash once; `origin` (where the record was read) goes into the lineage
   * of the period it counts in.
   */
  process(imp: Impression, idHash: IdHash, nowMs: number, origin?: RecordOrigin): ProcessOutcome {
    const ts = imp.ts;
    if (ts > nowMs + this.maxClockSkewMs) {
      return { kind: 'future_timestamp', detail: `ts ${ts} is ${ts - nowMs} ms ahead of the clock; max skew ${this.maxClockSkewMs} ms` };
    }
    const start = windowStartOf(ts, this.windowMs);
    if (start < this.evictedBefore) {
      // A copy re-stamped into a window past the horizon is still a duplicate while its first copy is held.
      const held = this.index.tagOf(idHash);
      if (held >= 0) return this.duplicate(held, imp, origin);
      // Reported in the period the watermark is in now, never in its own (closed or closing) period.
      this.periods.noteLate(imp.advertiserId, periodOf(start), this.wm);
      return {
        kind: 'too_late',
        detail: `ts ${ts} falls in window ${start}, past the dedup horizon (windows before ${this.evictedBefore} are evicted; watermark ${this.wm})`,
      };
    }
    const held = this.index.addOrGet(idHash, start / this.windowMs);
    if (held >= 0) return this.duplicate(held, imp, origin);
    this.windows.count(start, idHash, imp.advertiserId, imp.campaignId, imp.costMicros, imp.dimensionValues);
    if (origin !== undefined) this.periods.noteContribution(start, origin);
    return { kind: 'counted' };
  }

  /** A copy of an id held with `tag`: counted as a duplicate in the window of the first copy. */
  private duplicate(tag: number, imp: Impression, origin: RecordOrigin | undefined): ProcessOutcome {
    const start = tag * this.windowMs;
    this.windows.duplicate(start, imp.advertiserId, imp.campaignId);
    if (origin !== undefined) this.periods.noteContribution(start, origin);
    return { kind: 'duplicate' };
  }

  // ── commit ────────────────────────────────────────────────────────────────────────────────────

  /**
   * Moves event time, then hands over everything changed since the previous drain, for one
   * transaction. `source`: whether the shell saw this partition's own source caught up and without
   * records for the idle timeout, and the offset it has read to. `ends`: every source partition's
   * end offset as the shell last saw it (an idle mark counts only while its source has read to it).
   */
  drainChanges(nowMs: number, source: SourceStatus, ends: ReadonlyMap<number, number>): Changes {
    this.advance(nowMs, source, ends);
    const sourceIdle = source.idle;
    const evicted = this.windows.retireBefore(this.evictedBefore);
    const closes = this.closePeriods();
    const rows = this.windows.drainRows(this.closedThrough, this.publishedClosedThrough);
    this.publishedClosedThrough = this.closedThrough;
    const dedupDeltas = this.windows.drainDeltas();

    let sourceMark: InputMark | null = null;
    const last = this.lastMark;
    // Whole seconds: the other partitions hear of this source about once a second, not every commit;
    // and at least once per idle timeout, so a task restored elsewhere learns that this one is idle.
    if (this.partitions > 1 && (last === null || last.idle !== sourceIdle || nowMs - this.lastMarkAt >= this.idleTimeoutMs
      || Math.floor(last.watermark / 1000) !== Math.floor(this.sourceWm / 1000))) {
      sourceMark = { watermark: this.sourceWm, idle: sourceIdle, position: source.position };
      this.lastMark = sourceMark;
      this.lastMarkAt = nowMs;
    }
    return { rows, dedupDeltas, evicted, closes, watermark: this.wm, sourceMark, progress: this.progressIfChanged(nowMs) };
  }

  /** The source's watermark, then the task's (min over inputs, never back), then both frontiers. */
  private advance(nowMs: number, source: SourceStatus, ends: ReadonlyMap<number, number>): void {
    if (this.sourceMaxTs > 0) {
      // A clock running fast cannot close the present: the source watermark never passes the wall clock.
      const candidate = Math.min(this.sourceMaxTs, nowMs) - this.outOfOrdernessMs;
      if (candidate > this.sourceWm) this.sourceWm = candidate;
    }
    this.inputs.set(this.partition, { watermark: this.sourceWm, idle: source.idle, position: source.position }, nowMs);
    const low = this.inputs.low(nowMs, ends);
    if (low !== null && low > this.wm) this.wm = low;
    if (this.wm <= 0) return;
    const closed = this.wm - this.allowedLatenessMs;
    if (closed > this.closedThrough) this.closedThrough = closed;
    // The first window start whose ids are still within the horizon: start + retention > wm.
    const keepFrom = windowStartOf(this.wm - this.retentionMs, this.windowMs) + this.windowMs;
    if (keepFrom > this.evictedBefore) {
      this.evictedBefore = keepFrom;
      this.index.retireBelow(keepFrom / this.windowMs);
    }
  }

  /**
   * Closes every period whose windows are all past the dedup horizon and retired: nothing can change
   * it any more. Closing starts at the first period the watermark passed the horizon of (or an earlier
   * one this task still holds windows of): periods before it can hold nothing of this partition
   * (their events are too late), so a partition's first close says it passed all of them.
   */
  private closePeriods(): PeriodClose[] {
    const target = periodOf(this.evictedBefore);
    if (target <= 0) return [];
    if (this.periods.closedBefore === 0) {
      const earliest = this.windows.earliestStart;
      this.periods.startAt(Math.min(target, this.periods.earliestOpen ?? target, earliest === null ? target : periodOf(earliest)));
    }
    const closes: PeriodClose[] = [];
    while (this.periods.closedBefore < target) {
      const settled = this.windows.settlePeriod(this.periods.closedBefore);
      if (settled === null) break; // a window of it retires at the next drain; it closes then
      closes.push(this.periods.close(settled.rows, settled.rowKeys, this.wm));
    }
    return closes;
  }

  /** The progress when it changed, and at least once per idle timeout (readers see the task alive while nothing moves). */
  private progressIfChanged(nowMs: number): PartitionProgress | null {
    const p: PartitionProgress = {
      watermark: this.wm,
      maxEventTime: this.sourceMaxTs,
      sourceWatermark: this.sourceWm,
      inputs: this.inputs.snapshot(),
      closedThrough: this.closedThrough,
      evictedBefore: this.evictedBefore,
      periodsClosedBefore: this.periods.closedBefore,
      openPeriods: this.periods.snapshot(),
      windowMs: this.windowMs,
      partitions: this.partitions,
    };
    const periodsChanged = this.periods.takeChanged();
    if (this.lastProgress !== null && !periodsChanged && sameProgress(p, this.lastProgress) && nowMs - this.lastProgressAt < this.idleTimeoutMs) return null;
    this.lastProgress = p;
    this.lastProgressAt = nowMs;
    return p;
  }

  // ── restore (state rebuilt from what previous drains committed) ───────────────────────────────

  /**
   * The progress record, restored first. Refuses settings that cannot change once data flows.
   * Every input restarts active at its restored watermark: an input marked idle before a restart
   * may have piled up a backlog since (an outage), so it holds this task back until it reports
   * again (every source repeats its mark at least once per idle timeout). Nothing is marked sent,
   * so the first drain tells the others about this source.
   */
  restoreProgress(p: PartitionProgress, nowMs: number): void {
    if (p.windowMs !== this.windowMs) throw settingChanged('TALLY_WINDOW_MS', p.windowMs, this.windowMs, this.partition);
    if (p.partitions !== this.partitions) throw settingChanged('TALLY_PARTITIONS', p.partitions, this.partitions, this.partition);
    this.wm = Math.max(this.wm, p.watermark);
    this.sourceMaxTs = Math.max(this.sourceMaxTs, p.maxEventTime);
    this.sourceWm = Math.max(this.sourceWm, p.sourceWatermark);
    p.inputs.forEach((m, source) => {
      if (source !== this.partition) this.inputs.set(source, { watermark: m.watermark, idle: false, position: null }, nowMs);
    });
    this.inputs.set(this.partition, { watermark: this.sourceWm, idle: false, position: null }, nowMs);
    this.closedThrough = Math.max(this.closedThrough, p.closedThrough);
    this.publishedClosedThrough = this.closedThrough;
    this.evictedBefore = Math.max(this.evictedBefore, p.evictedBefore);
    this.index.retireBelow(this.evictedBefore / this.windowMs);
    this.periods.restore(p.periodsClosedBefore, p.openPeriods);
    this.periods.takeChanged();
    this.lastProgress = { ...p, inputs: p.inputs.map((m) => ({ ...m })) };
    this.lastProgressAt = nowMs;
  }

  /** One row read back from impression-counts; of several versions of a key the highest wins. */
  restoreRow(row: WindowRow): void {
    if (row.sourcePartition !== this.partition) {
      throw new Error(`row of partition ${row.sourcePartition} restored into partition ${this.partition}`);
    }
    this.checkAligned(row.windowStart);
    if (row.windowEnd !== row.windowStart + this.windowMs) {
      throw new ConfigError(`a row of window ${row.windowStart}–${row.windowEnd} does not fit TALLY_WINDOW_MS=${this.windowMs}; the window size cannot change once data flows`);
    }
    // Past the horizon when the state was written: frozen, waiting for its period to close.
    this.windows.restoreRow(row, row.windowStart < this.evictedBefore);
  }

  /** One dedup changelog chunk; the window's next chunk number continues after the highest seen. */
  restoreDedupChunk(windowStart: number, chunk: number, ids: Uint8Array): void {
    this.checkAligned(windowStart);
    this.windows.restoreChunk(windowStart, chunk, this.index.addChunk(ids, windowStart / this.windowMs));
  }

  private checkAligned(windowStart: number): void {
    if (!Number.isSafeInteger(windowStart) || windowStartOf(windowStart, this.windowMs) !== windowStart) {
      throw new ConfigError(`window start ${windowStart} is not a multiple of TALLY_WINDOW_MS=${this.windowMs}; the window size cannot change once data flows`);
    }
  }
}

function settingChanged(variable: string, stored: number, configured: number, partition: number): ConfigError {
  return new ConfigError(`${variable}=${configured}, but the aggregator's state in Kafka was built with ${variable}=${stored} (partition ${partition}); `
    + `it cannot change once data flows. Set ${variable}=${stored}, or start over with new topics (TALLY_TOPIC_PREFIX).`);
}

function sameProgress(a: PartitionProgress, b: PartitionProgress): boolean {
  if (a.watermark !== b.watermark || a.maxEventTime !== b.maxEventTime || a.sourceWatermark !== b.sourceWatermark
    || a.closedThrough !== b.closedThrough || a.evictedBefore !== b.evictedBefore || a.inputs.length !== b.inputs.length) return false;
  for (let i = 0; i < a.inputs.length; i++) {
    if (a.inputs[i].watermark !== b.inputs[i].watermark || a.inputs[i].idle !== b.inputs[i].idle) return false;
  }
  return true;
}
