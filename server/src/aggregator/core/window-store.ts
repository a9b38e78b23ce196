import { ID_BYTES, writeChunkId } from './dedup-chunk.js';
import { RowBreakdown } from './row-breakdown.js';
import { addSpend, setSpend, spendOf, type SpendSum } from './spend-sum.js';
import {
  PERIOD_MS, type BreakdownSettings, type DedupDelta, type EvictedWindow, type IdHash, type PeriodRow,
} from './types.js';
import { rowKey, type WindowRow } from '../../contracts/count-record.js';

/** One row's counts (spend exact: SpendSum), and its breakdown by dimension when any is configured. */
interface RowEntry extends SpendSum {
  row: Omit<WindowRow, 'spendMicros' | 'breakdowns'>;
  breakdown: RowBreakdown | null;
  dirty: boolean;
}

/** One window of the task: its rows and the ids first counted in it since the last drain. */
interface Window {
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
 * The windows of one task, pure: their rows (impressions, exact spend, duplicates, versions), the
 * new ids of each since the last drain in changelog layout, and their life: open → retired (past the
 * dedup horizon: ids forgotten, rows frozen) → settled into their billing period's close. Decisions
 * (what is late, what closes) are PartitionState's; this class keeps the books.
 */
export class WindowStore {
  private readonly windows = new Map<number, Window>();
  private dirtyRows: RowEntry[] = [];
  private changedWindows: Window[] = [];
  private idCount = 0;

  constructor(private readonly partition: number, private readonly windowMs: number, private readonly breakdowns: BreakdownSettings) {}

  get size(): number {
    return this.windows.size;
  }

  /** Ids counted in windows not retired yet. */
  get idsHeld(): number {
    return this.idCount;
  }

  /**
   * A new id, first counted in window `start`: one impression of `cost` in its (advertiser,
   * campaign) row, and in its values of the configured dimensions (`dimensionValues`, in their order).
   */
  count(start: number, h: IdHash, advertiserId: string, campaignId: string, costMicros: number, dimensionValues: readonly string[]): void {
    const win = this.window(start);
    win.ids++;
    this.idCount++;
    this.appendPending(win, h);
    const entry = this.rowEntry(win, advertiserId, campaignId);
    entry.row.impressions++;
    addSpend(entry, costMicros);
    entry.breakdown?.add(dimensionValues, costMicros);
    this.markDirty(win, entry);
  }

  /** A copy of an id first counted in window `start`. */
  duplicate(start: number, advertiserId: string, campaignId: string): void {
    const win = this.window(start);
    const entry = this.rowEntry(win, advertiserId, campaignId);
    entry.row.duplicates++;
    this.markDirty(win, entry);
  }

  /** Each changed row once, version one higher; `closedThrough` and the previously published one decide final/revised. */
  drainRows(closedThrough: number, publishedClosedThrough: number): WindowRow[] {
    const rows: WindowRow[] = [];
    for (const entry of this.dirtyRows) {
      const row = entry.row;
      row.version++;
      row.final = row.windowEnd <= closedThrough;
      // Revised when downstream had already been told the window was closed, whether or not this
      // row itself was emitted as final then: a new row in a closed window changes its totals too.
      row.revised = row.windowEnd <= publishedClosedThrough;
      entry.dirty = false;
      rows.push(entry.breakdown === null
        ? { ...row, spendMicros: spendOf(entry) }
        : { ...row, spendMicros: spendOf(entry), breakdowns: entry.breakdown.snapshot() });
    }
    this.dirtyRows = [];
    return rows;
  }

  /** The new ids of each changed window as its next changelog chunk. */
  drainDeltas(): DedupDelta[] {
    const deltas: DedupDelta[] = [];
    for (const win of this.changedWindows) {
      win.changed = false;
      if (win.pending === null || win.pendingIds === 0) continue;
      // Handed over without copying; the window starts a fresh buffer if it gets more ids.
      deltas.push({ windowStart: win.start, chunk: win.nextChunk++, ids: win.pending.subarray(0, win.pendingIds * ID_BYTES) });
      win.pending = null;
      win.pendingIds = 0;
    }
    this.changedWindows = [];
    return deltas;
  }

  /**
   * Retires the windows before `before`: their changelog chunks go, their rows stay, frozen, until
   * their period closes. A window that changed since the last drain waits one drain, so its last
   * change is written before its tombstones, not lost to them: call before drainDeltas.
   */
  retireBefore(before: number): EvictedWindow[] {
    const retired: EvictedWindow[] = [];
    for (const win of this.windows.values()) {
      if (win.evicted || win.start >= before || win.changed) continue;
      retired.push({ windowStart: win.start, chunks: win.nextChunk });
      win.evicted = true;
      this.idCount -= win.ids;
      win.ids = 0;
    }
    return retired.sort((a, b) => a.windowStart - b.windowStart);
  }

  /** The earliest window held, or null. */
  get earliestStart(): number | null {
    let min: number | null = null;
    for (const s of this.windows.keys()) if (min === null || s < min) min = s;
    return min;
  }

  /**
   * Settles the period starting at `periodStart` if every window of it is retired: its rows summed
   * per (advertiser, campaign), the keys of the rows it held, and the windows dropped. Null while
   * one of its windows is not retired yet.
   */
  settlePeriod(periodStart: number): { rows: PeriodRow[]; rowKeys: string[] } | null {
    const wins: Window[] = [];
    for (let w = periodStart; w < periodStart + PERIOD_MS; w += this.windowMs) {
      const win = this.windows.get(w);
      if (win === undefined) continue;
      if (!win.evicted) return null;
      wins.push(win);
    }
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
    return { rows: [...sums.values()], rowKeys };
  }

  // ── restore ───────────────────────────────────────────────────────────────────────────────────

  /** One row read back; of several versions of a key the highest wins. `retired`: its window was past the horizon. */
  restoreRow(row: WindowRow, retired: boolean): void {
    const win = this.window(row.windowStart);
    if (retired) win.evicted = true;
    const entry = this.rowEntry(win, row.advertiserId, row.campaignId);
    // A fresh entry has version 0; restored versions start at 1.
    if (row.version > entry.row.version) {
      const { spendMicros, breakdowns, ...rest } = row;
      entry.row = { ...rest };
      setSpend(entry, spendMicros);
      entry.breakdown?.restore(breakdowns ?? [], row.impressions, spendMicros);
    }
  }

  /** A changelog chunk of window `start` with `added` ids new to the index; chunk numbers continue after it. */
  restoreChunk(start: number, chunk: number, added: number): void {
    const win = this.window(start);
    win.ids += added;
    this.idCount += added;
    if (chunk + 1 > win.nextChunk) win.nextChunk = chunk + 1;
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────

  private window(start: number): Window {
    let win = this.windows.get(start);
    if (win === undefined) {
      win = {
        start, end: start + this.windowMs, ids: 0, rows: new Map(), nextChunk: 0, evicted: false, pending: null, pendingIds: 0, changed: false,
      };
      this.windows.set(start, win);
    }
    return win;
  }

  private rowEntry(win: Window, advertiserId: string, campaignId: string): RowEntry {
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
        breakdown: this.breakdowns.dimensions.length === 0 ? null : new RowBreakdown(this.breakdowns.dimensions, this.breakdowns.dimensionValueLimit),
        dirty: false,
      };
      byCampaign.set(campaignId, entry);
    }
    return entry;
  }

  private markDirty(win: Window, entry: RowEntry): void {
    if (!entry.dirty) {
      entry.dirty = true;
      this.dirtyRows.push(entry);
    }
    if (!win.changed) {
      win.changed = true;
      this.changedWindows.push(win);
    }
  }

  private appendPending(win: Window, h: IdHash): void {
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
}
