import type { Impression } from '../../impression/types.js';
import { DedupSet, ID_BYTES } from './dedup-set.js';
import type { Changes, DedupDelta, EvictedWindow, IdHash, ProcessOutcome, WindowRow, WindowSettings } from './types.js';
import { rowKey, windowStartOf } from './window.js';

/** One output row plus whether it changed since the last drain. */
interface RowEntry {
  row: WindowRow;
  dirty: boolean;
}

/** One open window: its rows, its dedup set and the ids first seen since the last drain. */
interface OpenWindow {
  start: number;
  end: number;
  ids: DedupSet;
  /** advertiserId → campaignId → row; nested maps so the per-event lookup builds no string. */
  rows: Map<string, Map<string, RowEntry>>;
  /** Changelog chunk number the next delta gets; after a restore, one past the highest restored. */
  nextChunk: number;
  /** New ids since the last drain, already in changelog layout; dropped (not kept) at drain. */
  pending: Uint8Array | null;
  pendingIds: number;
  /** Something in this window changed since the last drain. */
  changed: boolean;
}

const INITIAL_PENDING_IDS = 16;

/**
 * The state store of one input partition (a Kafka Streams task's store): open tumbling windows with
 * their rows and dedup sets, and the watermark. Pure: the shell feeds it impressions, drains what
 * changed into one Kafka transaction per commit interval, and rebuilds it from that output after a
 * crash (restoreRow / restoreDedupChunk / restoreWatermark).
 *
 * Watermark: starts at 0 (not -Infinity, which JSON cannot carry; event times are > 0, so 0 is
 * "nothing seen" all the same) and only moves forward: max(event time seen) − outOfOrdernessMs,
 * or the wall clock when the partition is idle (advanceIdle).
 */
export class PartitionState {
  private readonly windowMs: number;
  private readonly outOfOrdernessMs: number;
  private readonly allowedLatenessMs: number;
  private readonly maxClockSkewMs: number;
  /** windowEnd + allowedLateness + dedupHorizon, minus windowStart: how long a window's state lives. */
  private readonly retentionMs: number;

  private readonly windows = new Map<number, OpenWindow>();
  private dirtyRows: RowEntry[] = [];
  private changedWindows: OpenWindow[] = [];
  /** Lower bound of the open windows' starts; lets drains skip the eviction scan. */
  private oldestStart = Infinity;
  private ids = 0;
  private wm = 0;
  private maxTs = 0;
  /** The watermark of the previous drain: what downstream believes has closed. */
  private publishedWatermark = 0;

  constructor(readonly partition: number, settings: WindowSettings) {
    const { windowMs, outOfOrdernessMs, allowedLatenessMs, dedupHorizonMs, maxClockSkewMs } = settings;
    if (!Number.isSafeInteger(windowMs) || windowMs < 1) throw new RangeError(`windowMs must be a positive integer, got ${windowMs}`);
    for (const [name, v] of Object.entries({ outOfOrdernessMs, allowedLatenessMs, dedupHorizonMs, maxClockSkewMs })) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be an integer ≥ 0, got ${v}`);
    }
    this.windowMs = windowMs;
    this.outOfOrdernessMs = outOfOrdernessMs;
    this.allowedLatenessMs = allowedLatenessMs;
    this.maxClockSkewMs = maxClockSkewMs;
    this.retentionMs = windowMs + allowedLatenessMs + dedupHorizonMs;
  }

  // ── gauges ────────────────────────────────────────────────────────────────────────────────────

  get watermark(): number {
    return this.wm;
  }

  get maxEventTime(): number {
    return this.maxTs;
  }

  get windowsOpen(): number {
    return this.windows.size;
  }

  /** Ids held in all dedup sets. */
  get idsHeld(): number {
    return this.ids;
  }

  /** Bytes of all dedup sets' backing arrays. */
  get dedupBytes(): number {
    let bytes = 0;
    for (const w of this.windows.values()) bytes += w.ids.byteLength;
    return bytes;
  }

  /** True when drainChanges would return rows or dedup deltas. */
  get hasPendingChanges(): boolean {
    return this.changedWindows.length > 0;
  }

  // ── counting ──────────────────────────────────────────────────────────────────────────────────

  /**
   * Counts one impression whose home partition this is. `idHash` is hashImpressionId(imp.impressionId),
   * passed in so the caller can hash once. The returned row is the live row (counts include this
   * event; version/final/revised are those of its last drain): read it, don't keep or mutate it.
   */
  process(imp: Impression, idHash: IdHash, nowMs: number): ProcessOutcome {
    const ts = imp.ts;
    // A clock far ahead would drag the watermark forward and make honest events late: refuse it
    // before it touches anything.
    if (ts > nowMs + this.maxClockSkewMs) {
      return { kind: 'future_timestamp', detail: `ts ${ts} is ${ts - nowMs} ms ahead of the clock; max skew ${this.maxClockSkewMs} ms` };
    }
    const start = windowStartOf(ts, this.windowMs);
    // Same condition as eviction: once it holds, the window's dedup set is gone (or goes at the next
    // drain), so a copy of an already counted id could not be recognised. Never count it.
    if (start + this.retentionMs <= this.wm) {
      return {
        kind: 'too_late',
        detail: `ts ${ts} falls in window ${start}, whose dedup horizon ended at ${start + this.retentionMs}; watermark ${this.wm}`,
      };
    }

    const win = this.windows.get(start) ?? this.openWindow(start);
    const isNew = win.ids.add(idHash);
    const entry = this.rowEntry(win, imp.advertiserId, imp.campaignId);
    const row = entry.row;
    if (isNew) {
      this.ids++;
      this.appendPending(win, idHash);
      row.impressions++;
      row.spendMicros += imp.costMicros;
    } else {
      // A duplicate still changes the row (duplicates removed is shown), so it is emitted too.
      row.duplicates++;
    }
    this.markDirty(win, entry);

    if (ts > this.maxTs) {
      this.maxTs = ts;
      const candidate = ts - this.outOfOrdernessMs;
      if (candidate > this.wm) this.wm = candidate;
    }
    return { kind: isNew ? 'counted' : 'duplicate', row };
  }

  /**
   * Lets a caught-up, idle partition close windows by wall clock: without it, a partition that gets
   * no records would hold every window open forever (and the published watermark, the minimum over
   * partitions, with it). The watermark moves to nowMs − outOfOrdernessMs: exactly where an on-time
   * event stamped "now" would put it, so an idle partition never runs ahead of a busy one fed by
   * honest clocks, and an event still in flight is treated as it would be on a busy partition (late
   * at worst, counted as a revision; too_late only beyond the dedup horizon). maxEventTime is not
   * touched: it reports event times actually seen.
   * Call it only when the consumer has reached the partition's end: with a backlog, the wall clock
   * says nothing about the event times still to be read.
   */
  advanceIdle(nowMs: number): void {
    const candidate = nowMs - this.outOfOrdernessMs;
    if (candidate > this.wm) this.wm = candidate;
  }

  /**
   * Everything changed since the previous drain, for one transaction: each changed row once with its
   * version one higher, the new ids per window as the next changelog chunk, and the windows whose
   * dedup horizon the watermark has passed, which are dropped here.
   */
  drainChanges(): Changes {
    const wm = this.wm;
    const evicted = this.evict(wm);

    const rows: WindowRow[] = [];
    for (const entry of this.dirtyRows) {
      const row = entry.row;
      const closesAt = row.windowEnd + this.allowedLatenessMs;
      row.version++;
      row.final = wm >= closesAt;
      // Revised when downstream had already been told the window was closed (the previous drain's
      // watermark passed its close), whether or not this row itself was emitted as final then: a
      // new row in a closed window changes a closed period's totals just the same.
      row.revised = this.publishedWatermark >= closesAt;
      entry.dirty = false;
      rows.push({ ...row });
    }
    this.dirtyRows = [];

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

    this.publishedWatermark = wm;
    return { rows, dedupDeltas, evicted, watermark: wm };
  }

  // ── restore (state rebuilt from what previous drains committed) ───────────────────────────────

  /** One row read back from impression-counts; of several versions of a key the highest wins. */
  restoreRow(row: WindowRow): void {
    if (row.sourcePartition !== this.partition) {
      throw new Error(`row of partition ${row.sourcePartition} restored into partition ${this.partition}`);
    }
    this.checkAligned(row.windowStart);
    if (row.windowEnd !== row.windowStart + this.windowMs) {
      throw new Error(`row of window ${row.windowStart}–${row.windowEnd} does not fit windowMs ${this.windowMs}; was the window size changed with state in Kafka?`);
    }
    const win = this.windows.get(row.windowStart) ?? this.openWindow(row.windowStart);
    const entry = this.rowEntry(win, row.advertiserId, row.campaignId);
    // A fresh entry has version 0; restored versions start at 1.
    if (row.version > entry.row.version) entry.row = { ...row };
  }

  /** One dedup changelog chunk; the window's next chunk number continues after the highest seen. */
  restoreDedupChunk(windowStart: number, chunk: number, ids: Uint8Array): void {
    this.checkAligned(windowStart);
    const win = this.windows.get(windowStart) ?? this.openWindow(windowStart);
    this.ids += win.ids.addChunk(ids);
    if (chunk + 1 > win.nextChunk) win.nextChunk = chunk + 1;
  }

  /**
   * The watermark record. `watermark` is the one that was published; pass it when known, because an
   * idle partition's watermark can be ahead of maxEventTime − outOfOrderness, and restoring a lower
   * one would reopen windows that were already evicted (and so lost their dedup sets). Without it,
   * the watermark is recomputed from maxEventTime.
   */
  restoreWatermark(maxEventTime: number, watermark?: number): void {
    if (maxEventTime > this.maxTs) this.maxTs = maxEventTime;
    const candidate = Math.max(this.maxTs - this.outOfOrdernessMs, watermark ?? -Infinity);
    if (candidate > this.wm) this.wm = candidate;
    this.publishedWatermark = this.wm;
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────

  private openWindow(start: number): OpenWindow {
    const win: OpenWindow = {
      start, end: start + this.windowMs, ids: new DedupSet(), rows: new Map(),
      nextChunk: 0, pending: null, pendingIds: 0, changed: false,
    };
    this.windows.set(start, win);
    if (start < this.oldestStart) this.oldestStart = start;
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
          impressions: 0, spendMicros: 0, duplicates: 0, version: 0, final: false, revised: false,
        },
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
    DedupSet.writeChunkId(buf, offset, h);
    win.pendingIds++;
  }

  /**
   * Drops the windows whose dedup horizon the watermark has passed (too_late already refuses their
   * events). A window that changed since the last drain is kept one drain longer, so its last
   * change is written before its tombstones, not lost to them.
   */
  private evict(wm: number): EvictedWindow[] {
    const evicted: EvictedWindow[] = [];
    if (this.oldestStart + this.retentionMs > wm) return evicted;
    let oldest = Infinity;
    for (const win of this.windows.values()) {
      if (win.start + this.retentionMs <= wm && !win.changed) {
        const rowKeys: string[] = [];
        for (const byCampaign of win.rows.values()) {
          for (const { row } of byCampaign.values()) rowKeys.push(rowKey(win.start, row.advertiserId, row.campaignId, this.partition));
        }
        evicted.push({ windowStart: win.start, rowKeys, chunks: win.nextChunk });
        this.ids -= win.ids.size;
        this.windows.delete(win.start);
      } else if (win.start < oldest) {
        oldest = win.start;
      }
    }
    this.oldestStart = oldest;
    evicted.sort((a, b) => a.windowStart - b.windowStart);
    return evicted;
  }

  private checkAligned(windowStart: number): void {
    if (!Number.isSafeInteger(windowStart) || windowStartOf(windowStart, this.windowMs) !== windowStart) {
      throw new Error(`window start ${windowStart} is not a multiple of windowMs ${this.windowMs}; was the window size changed with state in Kafka?`);
    }
  }
}
