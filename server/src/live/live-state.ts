/**
 * The live feed's view of `impression-counts`, pure (no I/O, no clock: callers pass `now`).
 *
 * - The latest version of every window row `(windowStart, advertiser, campaign, sourcePartition)`;
 *   a lower or equal version never replaces a held one, so replays, the ClickHouse preload and the
 *   compacted topic can be merged in any order. Tombstones never reach this class: an evicted
 *   window's row stays (ClickHouse keeps it too).
 * - Per (window, advertiser, campaign) the sum over source partitions: what the dashboard shows.
 * - Per source partition the newest watermark and the wall clock of the transaction that wrote it.
 *   A window is final when every partition of the topic (0 … partitions−1) has a watermark
 *   ≥ windowEnd + allowedLateness; a partition that never published holds every window open.
 * - The range: windows starting at or after `rangeStart(now)` (the last 24 h, aligned down to the
 *   hour and the window, so "today UTC" and hourly buckets of the last day are complete). Older
 *   rows are ignored on arrival and pruned.
 * - What changed since the last drain, per advertiser: rows whose sums changed and rows that
 *   became final. Values are absolute, so sending a row twice is harmless.
 */
import type { WindowRow } from '../contracts/count-record.js';
import { microsJson } from '../contracts/micros.js';
import type { LiveWindowRow } from '../contracts/live-protocol.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/**
 * One version of one source partition's row, as the aggregator wrote it (or ClickHouse holds it);
 * the feed derives `final` from the watermarks itself.
 */
export type LiveRowInput = Omit<WindowRow, 'final' | 'revised'>;

export interface LiveStateOptions {
  /** Partitions of the topic: all must have published a watermark before anything is final. */
  partitions: number;
  windowMs: number;
  allowedLatenessMs: number;
  /** How far back windows are kept (default 24 h). */
  rangeMs?: number;
}

export interface PartitionWatermark {
  partition: number;
  watermark: number;
  emittedAt: number;
}

export interface ApplyOutcome {
  /** applied: new or higher version; stale: a version already held or older; out_of_range: window before the range. */
  kind: 'applied' | 'stale' | 'out_of_range';
}

export interface DrainResult {
  /** Changed rows (absolute values) per advertiser id, each sorted by window start then campaign. */
  byAdvertiser: Map<string, LiveWindowRow[]>;
  /** The minimum watermark moved since the previous drain. */
  watermarkChanged: boolean;
  /** See LiveState.publishedWatermark. */
  watermark: number;
}

export interface FinalTotals {
  /** Distinct final windows held. */
  windows: number;
  impressions: bigint;
  spendMicros: bigint;
  /** First and last final window start held (null when none). */
  firstWindowStart: number | null;
  lastWindowStart: number | null;
}

interface PartRow {
  impressions: number;
  spendMicros: bigint;
  duplicates: number;
  version: number;
}

interface Aggregate {
  windowStart: number;
  windowEnd: number;
  advertiserId: string;
  campaignId: string;
  impressions: number;
  spendMicros: bigint;
  duplicates: number;
  parts: Map<number, PartRow>;
}

interface WindowEntry {
  windowStart: number;
  windowEnd: number;
  /** adv + '\n' + cmp → aggregate */
  aggregates: Map<string, Aggregate>;
}

function aggKey(advertiserId: string, campaignId: string): string {
  return `${advertiserId}\n${campaignId}`;
}

function floorTo(value: number, step: number): number {
  return Math.floor(value / step) * step;
}

/** First window start kept at `now`: now − rangeMs, aligned down to the hour, then to the window. */
export function liveRangeStart(now: number, windowMs: number, rangeMs = DAY_MS): number {
  return floorTo(floorTo(now - rangeMs, HOUR_MS), windowMs);
}

function compareRows(a: LiveWindowRow, b: LiveWindowRow): number {
  if (a.windowStart !== b.windowStart) return a.windowStart - b.windowStart;
  if (a.advertiserId !== b.advertiserId) return a.advertiserId < b.advertiserId ? -1 : 1;
  if (a.campaignId !== b.campaignId) return a.campaignId < b.campaignId ? -1 : 1;
  return 0;
}

export class LiveState {
  readonly partitions: number;
  readonly windowMs: number;
  readonly allowedLatenessMs: number;
  readonly rangeMs: number;

  private readonly windows = new Map<number, WindowEntry>();
  /** advertiser → (window start + '\n' + campaign → aggregate), for per-advertiser snapshots. */
  private readonly byAdvertiser = new Map<string, Map<string, Aggregate>>();
  /** Windows not yet final, ordered by windowEnd (ascending); entries from notFinalHead on are live. */
  private notFinal: WindowEntry[] = [];
  private notFinalHead = 0;
  private readonly changed = new Map<string, Set<Aggregate>>();
  private readonly watermarks = new Map<number, PartitionWatermark>();
  /** Per partition, the end of the latest billing period it closed. */
  private readonly periodsClosed = new Map<number, number>();
  private ledgerBefore = 0;
  private cutoff: number;
  private drainedWatermark: number | null = null;
  private rowCount = 0;
  private duplicatesHeld = 0;
  private staleCount = 0;

  constructor(opts: LiveStateOptions, now: number) {
    if (!Number.isSafeInteger(opts.partitions) || opts.partitions < 1) throw new RangeError(`partitions must be ≥ 1, got ${opts.partitions}`);
    if (!Number.isSafeInteger(opts.windowMs) || opts.windowMs < 1) throw new RangeError(`windowMs must be ≥ 1, got ${opts.windowMs}`);
    this.partitions = opts.partitions;
    this.windowMs = opts.windowMs;
    this.allowedLatenessMs = opts.allowedLatenessMs;
    this.rangeMs = opts.rangeMs ?? DAY_MS;
    this.cutoff = liveRangeStart(now, this.windowMs, this.rangeMs);
  }

  // ── input ───────────────────────────────────────────────────────────────────────────────────

  /** Merges one version of a row: kept if its version is higher than the one held. */
  applyRow(r: LiveRowInput): ApplyOutcome {
    if (r.windowStart < this.cutoff) return { kind: 'out_of_range' };
    let win = this.windows.get(r.windowStart);
    if (win === undefined) {
      win = { windowStart: r.windowStart, windowEnd: r.windowEnd, aggregates: new Map() };
      this.windows.set(r.windowStart, win);
      if (!this.isFinal(win.windowEnd)) this.insertNotFinal(win);
    }
    const key = aggKey(r.advertiserId, r.campaignId);
    let agg = win.aggregates.get(key);
    if (agg === undefined) {
      agg = {
        windowStart: r.windowStart, windowEnd: win.windowEnd, advertiserId: r.advertiserId, campaignId: r.campaignId,
        impressions: 0, spendMicros: 0n, duplicates: 0, parts: new Map(),
      };
      win.aggregates.set(key, agg);
      let adv = this.byAdvertiser.get(r.advertiserId);
      if (adv === undefined) {
        adv = new Map();
        this.byAdvertiser.set(r.advertiserId, adv);
      }
      adv.set(`${r.windowStart}\n${r.campaignId}`, agg);
    }
    const held = agg.parts.get(r.sourcePartition);
    if (held !== undefined && held.version >= r.version) {
      this.staleCount++;
      return { kind: 'stale' };
    }
    const prev = held ?? { impressions: 0, spendMicros: 0n, duplicates: 0, version: -1 };
    agg.impressions += r.impressions - prev.impressions;
    agg.spendMicros += r.spendMicros - prev.spendMicros;
    agg.duplicates += r.duplicates - prev.duplicates;
    this.duplicatesHeld += r.duplicates - prev.duplicates;
    if (held === undefined) this.rowCount++;
    agg.parts.set(r.sourcePartition, { impressions: r.impressions, spendMicros: r.spendMicros, duplicates: r.duplicates, version: r.version });
    this.markChanged(agg);
    return { kind: 'applied' };
  }

  /** A partition's watermark record; watermarks never go back (an older record is ignored). */
  applyWatermark(partition: number, watermark: number, emittedAt: number): boolean {
    const held = this.watermarks.get(partition);
    if (held !== undefined && held.watermark > watermark) return false;
    if (held !== undefined && held.watermark === watermark && held.emittedAt >= emittedAt) return false;
    this.watermarks.set(partition, { partition, watermark, emittedAt: Math.max(emittedAt, held?.emittedAt ?? emittedAt) });
    return true;
  }

  /**
   * A partition closed a billing period ending at `periodEnd`. Once every partition closed a period,
   * the windows before its end are in the ledger: their rows become `final` (and are re-sent).
   */
  applyPeriodClose(partition: number, periodEnd: number): boolean {
    if (periodEnd <= (this.periodsClosed.get(partition) ?? 0)) return false;
    this.periodsClosed.set(partition, periodEnd);
    const before = this.ledgerBefore;
    let min = Infinity;
    for (let p = 0; p < this.partitions; p++) min = Math.min(min, this.periodsClosed.get(p) ?? 0);
    this.ledgerBefore = min;
    if (min <= before) return false;
    for (const w of this.windows.values()) {
      if (w.windowStart >= before && w.windowStart < min) for (const a of w.aggregates.values()) this.markChanged(a);
    }
    return true;
  }

  // ── queries ─────────────────────────────────────────────────────────────────────────────────

  /** Windows starting before this are in the billing ledger (final in every partition); 0: none yet. */
  get ledgerFinalBefore(): number {
    return this.ledgerBefore;
  }

  /** Minimum watermark over partitions 0 … partitions−1; null while one of them never published. */
  minWatermark(): number | null {
    let min = Infinity;
    for (let p = 0; p < this.partitions; p++) {
      const w = this.watermarks.get(p);
      if (w === undefined) return null;
      if (w.watermark < min) min = w.watermark;
    }
    return min;
  }

  /** The protocol's `watermark`: the minimum, or 0 while a partition never published. */
  get publishedWatermark(): number {
    return this.minWatermark() ?? 0;
  }

  isFinal(windowEnd: number): boolean {
    const wm = this.minWatermark();
    return wm !== null && windowEnd + this.allowedLatenessMs <= wm;
  }

  /** Per partition 0 … partitions−1 (watermark 0, emittedAt null when none was published). */
  partitionWatermarks(): Array<{ partition: number; watermark: number; emittedAt: number | null }> {
    const out = [];
    for (let p = 0; p < this.partitions; p++) {
      const w = this.watermarks.get(p);
      out.push({ partition: p, watermark: w?.watermark ?? 0, emittedAt: w?.emittedAt ?? null });
    }
    return out;
  }

  /** Wall clock of the newest transaction seen (from the watermark records), or null. */
  get lastEmittedAt(): number | null {
    let max: number | null = null;
    for (const w of this.watermarks.values()) if (max === null || w.emittedAt > max) max = w.emittedAt;
    return max;
  }

  /** First window start held (older ones are ignored and pruned). */
  get rangeStart(): number {
    return this.cutoff;
  }

  /** Sum of the duplicates column over the rows held (duplicates removed in the range). */
  get duplicatesRemoved(): number {
    return this.duplicatesHeld;
  }

  get stats(): { rows: number; aggregates: number; windows: number; staleIgnored: number } {
    let aggregates = 0;
    for (const w of this.windows.values()) aggregates += w.aggregates.size;
    return { rows: this.rowCount, aggregates, windows: this.windows.size, staleIgnored: this.staleCount };
  }

  /** Every row of one advertiser, or of all (null), sorted by window, advertiser, campaign. */
  snapshotRows(advertiserId: string | null): LiveWindowRow[] {
    const wm = this.minWatermark();
    const out: LiveWindowRow[] = [];
    if (advertiserId === null) {
      for (const w of this.windows.values()) for (const a of w.aggregates.values()) out.push(this.toRow(a, wm));
    } else {
      for (const a of this.byAdvertiser.get(advertiserId)?.values() ?? []) out.push(this.toRow(a, wm));
    }
    return out.sort(compareRows);
  }

  /** Advertisers with at least one row held. */
  advertisers(): string[] {
    return [...this.byAdvertiser.keys()].sort();
  }

  /**
   * Totals of the final windows held whose end + lateness is at or below `watermark` (default:
   * the minimum watermark), i.e. windows closed for good, for the exact check against ClickHouse.
   */
  finalTotals(watermark: number | null = this.minWatermark()): FinalTotals {
    const totals: FinalTotals = { windows: 0, impressions: 0n, spendMicros: 0n, firstWindowStart: null, lastWindowStart: null };
    if (watermark === null) return totals;
    for (const w of this.windows.values()) {
      if (w.windowEnd + this.allowedLatenessMs > watermark) continue;
      totals.windows++;
      if (totals.firstWindowStart === null || w.windowStart < totals.firstWindowStart) totals.firstWindowStart = w.windowStart;
      if (totals.lastWindowStart === null || w.windowStart > totals.lastWindowStart) totals.lastWindowStart = w.windowStart;
      for (const a of w.aggregates.values()) {
        totals.impressions += BigInt(a.impressions);
        totals.spendMicros += a.spendMicros;
      }
    }
    return totals;
  }

  // ── changes ─────────────────────────────────────────────────────────────────────────────────

  /** Everything changed since the previous drain, per advertiser; resets the change sets. */
  drainChanges(): DrainResult {
    const wm = this.minWatermark();
    if (wm !== null) {
      // Windows the watermark closed since the last drain: their `final` flag changed.
      while (this.notFinalHead < this.notFinal.length) {
        const w = this.notFinal[this.notFinalHead];
        if (w.windowEnd + this.allowedLatenessMs > wm) break;
        this.notFinalHead++;
        for (const a of w.aggregates.values()) this.markChanged(a);
      }
      this.compactNotFinal();
    }
    const byAdvertiser = new Map<string, LiveWindowRow[]>();
    for (const [adv, set] of this.changed) {
      const rows: LiveWindowRow[] = [];
      for (const a of set) rows.push(this.toRow(a, wm));
      if (rows.length > 0) byAdvertiser.set(adv, rows.sort(compareRows));
    }
    this.changed.clear();
    const watermarkChanged = wm !== this.drainedWatermark;
    this.drainedWatermark = wm;
    return { byAdvertiser, watermarkChanged, watermark: wm ?? 0 };
  }

  /** Drops the windows before the range at `now`; returns the number of rows dropped. */
  prune(now: number): number {
    const cutoff = liveRangeStart(now, this.windowMs, this.rangeMs);
    if (cutoff <= this.cutoff) return 0;
    this.cutoff = cutoff;
    let dropped = 0;
    let droppedWindow = false;
    for (const [start, w] of this.windows) {
      if (start >= cutoff) continue;
      droppedWindow = true;
      this.windows.delete(start);
      for (const a of w.aggregates.values()) {
        dropped += a.parts.size;
        this.rowCount -= a.parts.size;
        this.duplicatesHeld -= a.duplicates;
        const adv = this.byAdvertiser.get(a.advertiserId);
        adv?.delete(`${a.windowStart}\n${a.campaignId}`);
        if (adv?.size === 0) this.byAdvertiser.delete(a.advertiserId);
        const set = this.changed.get(a.advertiserId);
        set?.delete(a);
        if (set?.size === 0) this.changed.delete(a.advertiserId);
      }
    }
    if (droppedWindow) {
      this.notFinal = this.notFinal.slice(this.notFinalHead).filter((w) => w.windowStart >= cutoff);
      this.notFinalHead = 0;
    }
    return dropped;
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────

  private toRow(a: Aggregate, wm: number | null): LiveWindowRow {
    const closed = wm !== null && a.windowEnd + this.allowedLatenessMs <= wm;
    return {
      windowStart: a.windowStart,
      windowEnd: a.windowEnd,
      advertiserId: a.advertiserId,
      campaignId: a.campaignId,
      impressions: a.impressions,
      spendMicros: microsJson(a.spendMicros),
      duplicates: a.duplicates,
      final: closed,
      maturity: a.windowStart < this.ledgerBefore ? 'final' : closed ? 'provisional' : 'live',
    };
  }

  private markChanged(a: Aggregate): void {
    let set = this.changed.get(a.advertiserId);
    if (set === undefined) {
      set = new Set();
      this.changed.set(a.advertiserId, set);
    }
    set.add(a);
  }

  /** Sorted insert by windowEnd; new windows are almost always the latest, so this is an append. */
  private insertNotFinal(w: WindowEntry): void {
    const list = this.notFinal;
    let i = list.length;
    while (i > this.notFinalHead && list[i - 1].windowEnd > w.windowEnd) i--;
    list.splice(i, 0, w);
  }

  private compactNotFinal(): void {
    if (this.notFinalHead > 1024 && this.notFinalHead * 2 > this.notFinal.length) {
      this.notFinal = this.notFinal.slice(this.notFinalHead);
      this.notFinalHead = 0;
    }
  }
}
