import { ConfigError } from '../../errors.js';
import type { Impression } from '../../impression/types.js';
import { ID_BYTES, writeChunkId } from './dedup-chunk.js';
import { DedupIndex } from './dedup-index.js';
import { InputWatermarks } from './input-watermarks.js';
import { PeriodBook, periodOf } from './period-book.js';
import {
  PERIOD_MS,
  type Changes, type DedupDelta, type EvictedWindow, type IdHash, type InputMark, type PartitionProgress, type PeriodClose,
  type PeriodRow, type ProcessOutcome, type RecordOrigin, type WindowRow, type WindowSettings,
} from './types.js';
import { rowKey, windowStartOf } from './window.js';

/**
 * One row's counts. Spend is kept as high·2⁵² + low with both parts plain numbers: one event's
 * cost (≤ MAX_COST_MICROS = 1e12 < 2⁵²) added to low < 2⁵² stays below 2⁵³, so every addition is
 * exact and allocates nothing, and the sum is exact far past 2⁵³ micros.
 */
interface RowEntry {
  row: Omit<WindowRow, 'spendMicros'>;
  spendLow: number;
  spendHigh: number;
  dirty: boolean;
}

const SPEND_CARRY = 2 ** 52;
const SPEND_CARRY_N = 2n ** 52n;

function spendOf(entry: RowEntry): bigint {
  return BigInt(entry.spendHigh) * SPEND_CARRY_N + BigInt(entry.spendLow);
}

/** One open window: its rows and the ids first counted in it since the last drain. */
interface OpenWindow {
  start: number;
  end: number;
  /** Ids whose first copy was counted here (they live in the partition's DedupIndex). */
  ids: number;
  /** advertiserId → campaignId → row; nested maps so the per-event lookup builds no string. */
  rows: Map<string, Map<string, RowEntry>>;
  /** Changelog chunk number the next delta gets; after a restore, one past the highest restored. */
  nextChunk: number;
  /** Past the dedup horizon: ids retired, chunks tombstoned; its rows are frozen until its period closes. */
  evicted: boolean;
  /** New ids since the last drain, already in changelog layout; handed over (not kept) at drain. */
  pending: Uint8Array | null;
  pendingIds: number;
  /** Something in this window changed since the last drain. */
  changed: boolean;
}

const INITIAL_PENDING_IDS = 16;

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

  private readonly windows = new Map<number, OpenWindow>();
  private readonly index = new DedupIndex();
  private readonly inputs: InputWatermarks;
  private readonly periods = new PeriodBook();
  private dirtyRows: RowEntry[] = [];
  private changedWindows: OpenWindow[] = [];
  private ids = 0;

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
    return this.ids;
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
    this.inputs.set(source, mark.watermark, mark.idle, nowMs);
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
    const win = this.windows.get(start) ?? this.openWindow(start);
    win.ids++;
    this.ids++;
    this.appendPending(win, idHash);
    const entry = this.rowEntry(win, imp.advertiserId, imp.campaignId);
    entry.row.impressions++;
    const low = entry.spendLow + imp.costMicros;
    if (low >= SPEND_CARRY) {
      entry.spendLow = low - SPEND_CARRY;
      entry.spendHigh++;
    } else {
      entry.spendLow = low;
    }
    this.markDirty(win, entry);
    if (origin !== undefined) this.periods.noteContribution(start, origin);
    return { kind: 'counted' };
  }

  /** A copy of an id held with `tag`: counted as a duplicate in the window of the first copy. */
  private duplicate(tag: number, imp: Impression, origin: RecordOrigin | undefined): ProcessOutcome {
    const start = tag * this.windowMs;
    const win = this.windows.get(start) ?? this.openWindow(start);
    const entry = this.rowEntry(win, imp.advertiserId, imp.campaignId);
    entry.row.duplicates++;
    this.markDirty(win, entry);
    if (origin !== undefined) this.periods.noteContribution(start, origin);
    return { kind: 'duplicate' };
  }

  // ── commit ────────────────────────────────────────────────────────────────────────────────────

  /**
   * Moves event time, then hands over everything changed since the previous drain, for one
   * transaction. `sourceIdle`: the shell saw this partition's own source caught up and without
   * records for the idle timeout.
   */
  drainChanges(nowMs: number, sourceIdle: boolean): Changes {
    this.advance(nowMs, sourceIdle);
    const evicted = this.evict();
    const closes = this.closePeriods();

    const rows: WindowRow[] = [];
    for (const entry of this.dirtyRows) {
      const row = entry.row;
      row.version++;
      row.final = row.windowEnd <= this.closedThrough;
      // Revised when downstream had already been told the window was closed, whether or not this
      // row itself was emitted as final then: a new row in a closed window changes its totals too.
      row.revised = row.windowEnd <= this.publishedClosedThrough;
      entry.dirty = false;
      rows.push({ ...row, spendMicros: spendOf(entry) });
    }
    this.dirtyRows = [];
    this.publishedClosedThrough = this.closedThrough;

    const dedupDeltas: DedupDelta[] = [];
    for (const win of this.changedWindows) {
      win.changed = false;
      if (win.pending === null || win.pendingIds === 0) continue;
      // Handed over without copying; the window starts a fresh buffer if it gets more ids.
      dedupDeltas.push({ windowStart: win.start, chunk: win.nextChunk++, ids: win.pending.subarray(0, win.pendingIds * ID_BYTES) });
      win.pending = null;
      win.pendingIds = 0;
    }
    this.changedWindows = [];

    let sourceMark: InputMark | null = null;
    const last = this.lastMark;
    // Whole seconds: the other partitions hear of this source about once a second, not every commit;
    // and at least once per idle timeout, so a task restored elsewhere learns that this one is idle.
    if (this.partitions > 1 && (last === null || last.idle !== sourceIdle || nowMs - this.lastMarkAt >= this.idleTimeoutMs
      || Math.floor(last.watermark / 1000) !== Math.floor(this.sourceWm / 1000))) {
      sourceMark = { watermark: this.sourceWm, idle: sourceIdle };
      this.lastMark = sourceMark;
      this.lastMarkAt = nowMs;
    }
    return { rows, dedupDeltas, evicted, closes, watermark: this.wm, sourceMark, progress: this.progressIfChanged(nowMs) };
  }

  /** The source's watermark, then the task's (min over inputs, never back), then both frontiers. */
  private advance(nowMs: number, sourceIdle: boolean): void {
    if (this.sourceMaxTs > 0) {
      // A clock running fast cannot close the present: the source watermark never passes the wall clock.
      const candidate = Math.min(this.sourceMaxTs, nowMs) - this.outOfOrdernessMs;
      if (candidate > this.sourceWm) this.sourceWm = candidate;
    }
    this.inputs.set(this.partition, this.sourceWm, sourceIdle, nowMs);
    const low = this.inputs.low(nowMs);
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
   * Retires the windows before evictedBefore (their events are already refused as too_late and
   * their ids retired): their changelog chunks go, their rows stay, frozen, until their period
   * closes. A window that changed since the last drain is kept one drain longer, so its last change
   * is written before its tombstones, not lost to them.
   */
  private evict(): EvictedWindow[] {
    const evicted: EvictedWindow[] = [];
    for (const win of this.windows.values()) {
      if (win.evicted || win.start >= this.evictedBefore || win.changed) continue;
      evicted.push({ windowStart: win.start, chunks: win.nextChunk });
      win.evicted = true;
      this.ids -= win.ids;
      win.ids = 0;
    }
    evicted.sort((a, b) => a.windowStart - b.windowStart);
    return evicted;
  }

  /**
   * Closes every period whose windows are all past the dedup horizon and retired: nothing can change
   * it any more. Its rows are summed per (advertiser, campaign) into the close, and its windows go.
   * The first close starts at the earliest period this task holds anything of: periods before it
   * can hold nothing of this partition (their events are too late).
   */
  private closePeriods(): PeriodClose[] {
    const target = periodOf(this.evictedBefore);
    if (target <= 0) return [];
    if (this.periods.closedBefore === 0) {
      let from = Math.min(target, this.periods.earliestOpen ?? target);
      for (const win of this.windows.values()) from = Math.min(from, periodOf(win.start));
      this.periods.startAt(from);
    }
    const closes: PeriodClose[] = [];
    while (this.periods.closedBefore < target) {
      const start = this.periods.closedBefore;
      const wins: OpenWindow[] = [];
      for (let w = start; w < start + PERIOD_MS; w += this.windowMs) {
        const win = this.windows.get(w);
        if (win !== undefined) wins.push(win);
      }
      if (wins.some((w) => !w.evicted)) break; // retired at the next drain, closed then
      const sums = new Map<string, PeriodRow>();
      const rowKeys: string[] = [];
      for (const win of wins) {
        for (const byCampaign of win.rows.values()) {
          for (const entry of byCampaign.values()) {
            const { advertiserId, campaignId } = entry.row;
            rowKeys.push(rowKey(win.start, advertiserId, campaignId, this.partition));
            const key = `${advertiserId}\n${campaignId}`;
            const sum = sums.get(key) ?? { advertiserId, campaignId, impressions: 0, spendMicros: 0n, duplicates: 0 };
            sum.impressions += entry.row.impressions;
            sum.spendMicros += spendOf(entry);
            sum.duplicates += entry.row.duplicates;
            sums.set(key, sum);
          }
        }
        this.windows.delete(win.start);
      }
      closes.push(this.periods.close([...sums.values()], rowKeys, this.wm));
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
      if (source !== this.partition) this.inputs.set(source, m.watermark, false, nowMs);
    });
    this.inputs.set(this.partition, this.sourceWm, false, nowMs);
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
    const win = this.windows.get(row.windowStart) ?? this.openWindow(row.windowStart);
    // Past the horizon when the state was written: frozen, waiting for its period to close.
    if (row.windowStart < this.evictedBefore) win.evicted = true;
    const entry = this.rowEntry(win, row.advertiserId, row.campaignId);
    // A fresh entry has version 0; restored versions start at 1.
    if (row.version > entry.row.version) {
      const { spendMicros, ...rest } = row;
      entry.row = { ...rest };
      entry.spendHigh = Number(spendMicros / SPEND_CARRY_N);
      entry.spendLow = Number(spendMicros % SPEND_CARRY_N);
    }
  }

  /** One dedup changelog chunk; the window's next chunk number continues after the highest seen. */
  restoreDedupChunk(windowStart: number, chunk: number, ids: Uint8Array): void {
    this.checkAligned(windowStart);
    const win = this.windows.get(windowStart) ?? this.openWindow(windowStart);
    const added = this.index.addChunk(ids, windowStart / this.windowMs);
    win.ids += added;
    this.ids += added;
    if (chunk + 1 > win.nextChunk) win.nextChunk = chunk + 1;
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────

  private openWindow(start: number): OpenWindow {
    const win: OpenWindow = {
      start, end: start + this.windowMs, ids: 0, rows: new Map(), nextChunk: 0, evicted: false, pending: null, pendingIds: 0, changed: false,
    };
    this.windows.set(start, win);
    return win;
  }

  private rowEntry(win: OpenWindow, advertiserId: string, campaignId: string): RowEntry {
    let byCampaign = win.rows.get(advertiserId);
    if (byCampaign === undefined) {
      byCampaign = new Map();
      win.rows.set(advertiserId, byCampaign);
    }
    let entry = byCampaign.get(campaignId);
    if (entry === undefined) {
      entry = {
        row: {
          windowStart: win.start, windowEnd: win.end, advertiserId, campaignId, sourcePartition: this.partition,
          impressions: 0, duplicates: 0, version: 0, final: false, revised: false,
        },
        spendLow: 0,
        spendHigh: 0,
        dirty: false,
      };
      byCampaign.set(campaignId, entry);
    }
    return entry;
  }

  private markDirty(win: OpenWindow, entry: RowEntry): void {
    if (!entry.dirty) {
      entry.dirty = true;
      this.dirtyRows.push(entry);
    }
    if (!win.changed) {
      win.changed = true;
      this.changedWindows.push(win);
    }
  }

  private appendPending(win: OpenWindow, h: IdHash): void {
    let buf = win.pending;
    const offset = win.pendingIds * ID_BYTES;
    if (buf === null || offset + ID_BYTES > buf.length) {
      const grown = new Uint8Array(Math.max(INITIAL_PENDING_IDS * ID_BYTES, (buf?.length ?? 0) * 2));
      if (buf !== null) grown.set(buf.subarray(0, offset));
      buf = grown;
      win.pending = buf;
    }
    writeChunkId(buf, offset, h);
    win.pendingIds++;
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
