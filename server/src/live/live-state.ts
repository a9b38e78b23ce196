/**
 * The live feed's view of `impression-counts`, pure (no I/O, no clock: callers pass `now`).
 *
 * - The latest version of every window row `(windowStart, advertiser, campaign, sourcePartition)`;
 *   a lower or equal version never replaces a held one, so replays, the ClickHouse preload and the
 *   compacted topic can be merged in any order. Tombstones never reach this class: an evicted
 *   window's row stays (ClickHouse keeps it too). Held by LiveWindows (live-state-windows.ts).
 * - Per (window, advertiser, campaign) the sum over source partitions: what the dashboard shows.
 * - Per source partition the newest watermark and the wall clock of the transaction that wrote it
 *   (PartitionProgress, live-state-progress.ts). A window is final when every partition of the
 *   topic (0 … partitions−1) has a watermark ≥ windowEnd + allowedLateness; a partition that never
 *   published holds every window open.
 * - The range: windows starting at or after `rangeStart(now)` (the last 24 h, aligned down to the
 *   hour and the window, so "today UTC" and hourly buckets of the last day are complete). Older
 *   rows are ignored on arrival and pruned.
 * - What changed since the last drain, per advertiser: rows whose sums changed and rows that
 *   became final. Values are absolute, so sending a row twice is harmless.
 */
import { microsJson } from '../contracts/micros.js';
import type { LiveWindowRow } from '../contracts/live-protocol.js';
import { PartitionProgress } from './live-state-progress.js';
import { LiveWindows, type Aggregate, type FinalTotals, type LiveRowInput } from './live-state-windows.js';

export type { FinalTotals, LiveRowInput } from './live-state-windows.js';
export type { PartitionWatermark } from './live-state-progress.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

export interface LiveStateOptions {
  /** Partitions of the topic: all must have published a watermark before anything is final. */
  partitions: number;
  windowMs: number;
  allowedLatenessMs: number;
  /** How far back windows are kept (default 24 h). */
  rangeMs?: number;
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

  private readonly windows: LiveWindows;
  private readonly progress: PartitionProgress;
  /** advertiser → the aggregates changed since the previous drain. */
  private readonly changed = new Map<string, Set<Aggregate>>();
  private cutoff: number;
  private drainedWatermark: number | null = null;

  constructor(opts: LiveStateOptions, now: number) {
    if (!Number.isSafeInteger(opts.partitions) || opts.partitions < 1) throw new RangeError(`partitions must be ≥ 1, got ${opts.partitions}`);
    if (!Number.isSafeInteger(opts.windowMs) || opts.windowMs < 1) throw new RangeError(`windowMs must be ≥ 1, got ${opts.windowMs}`);
    this.partitions = opts.partitions;
    this.windowMs = opts.windowMs;
    this.allowedLatenessMs = opts.allowedLatenessMs;
    this.rangeMs = opts.rangeMs ?? DAY_MS;
    this.cutoff = liveRangeStart(now, this.windowMs, this.rangeMs);
    this.windows = new LiveWindows(this.allowedLatenessMs);
    this.progress = new PartitionProgress(this.partitions);
  }

  // ── input ───────────────────────────────────────────────────────────────────────────────────

  /** Merges one version of a row: kept if its version is higher than the one held. */
  applyRow(r: LiveRowInput): ApplyOutcome {
    if (r.windowStart < this.cutoff) return { kind: 'out_of_range' };
    const changed = this.windows.merge(r, (windowEnd) => this.isFinal(windowEnd));
    if (changed === null) return { kind: 'stale' };
    this.markChanged(changed);
    return { kind: 'applied' };
  }

  /** A partition's watermark record; watermarks never go back (an older record is ignored). */
  applyWatermark(partition: number, watermark: number, emittedAt: number): boolean {
    return this.progress.applyWatermark(partition, watermark, emittedAt);
  }

  /**
   * A partition closed a billing period ending at `periodEnd`. Once every partition closed a period,
   * the windows before its end are in the ledger: their rows become `final` (and are re-sent).
   */
  applyPeriodClose(partition: number, periodEnd: number): boolean {
    const moved = this.progress.applyPeriodClose(partition, periodEnd);
    if (moved === null) return false;
    for (const a of this.windows.startingIn(moved.from, moved.to)) this.markChanged(a);
    return true;
  }

  // ── queries ─────────────────────────────────────────────────────────────────────────────────

  /** Windows starting before this are in the billing ledger (final in every partition); 0: none yet. */
  get ledgerFinalBefore(): number {
    return this.progress.ledgerFinalBefore;
  }

  /** Minimum watermark over partitions 0 … partitions−1; null while one of them never published. */
  minWatermark(): number | null {
    return this.progress.minWatermark();
  }

  /** The protocol's `watermark`: the minimum, or 0 while a partition never published. */
  get publishedWatermark(): number {
    return this.minWatermark() ?? 0;
  }

  isFinal(windowEnd: number): boolean {
    return this.windows.isClosed(windowEnd, this.minWatermark());
  }

  /** Per partition 0 … partitions−1 (watermark 0, emittedAt null when none was published). */
  partitionWatermarks(): Array<{ partition: number; watermark: number; emittedAt: number | null }> {
    return this.progress.partitionWatermarks();
  }

  /** Wall clock of the newest transaction seen (from the watermark records), or null. */
  get lastEmittedAt(): number | null {
    return this.progress.lastEmittedAt;
  }

  /** First window start held (older ones are ignored and pruned). */
  get rangeStart(): number {
    return this.cutoff;
  }

  /** Sum of the duplicates column over the rows held (duplicates removed in the range). */
  get duplicatesRemoved(): number {
    return this.windows.duplicates;
  }

  get stats(): { rows: number; aggregates: number; windows: number; staleIgnored: number } {
    return this.windows.stats;
  }

  /** Every row of one advertiser, or of all (null), sorted by window, advertiser, campaign. */
  snapshotRows(advertiserId: string | null): LiveWindowRow[] {
    const wm = this.minWatermark();
    return this.windows.aggregates(advertiserId).map((a) => this.toRow(a, wm)).sort(compareRows);
  }

  /** Advertisers with at least one row held. */
  advertisers(): string[] {
    return this.windows.advertisers();
  }

  /**
   * Totals of the final windows held whose end + lateness is at or below `watermark` (default:
   * the minimum watermark), i.e. windows closed for good, for the exact check against ClickHouse.
   */
  finalTotals(watermark: number | null = this.minWatermark()): FinalTotals {
    if (watermark === null) return { windows: 0, impressions: 0n, spendMicros: 0n, firstWindowStart: null, lastWindowStart: null };
    return this.windows.totalsClosedBy(watermark);
  }

  // ── changes ─────────────────────────────────────────────────────────────────────────────────

  /** Everything changed since the previous drain, per advertiser; resets the change sets. */
  drainChanges(): DrainResult {
    const wm = this.minWatermark();
    // Windows the watermark closed since the last drain: their `final` flag changed.
    if (wm !== null) for (const a of this.windows.closedBy(wm)) this.markChanged(a);
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
    for (const a of this.windows.dropBefore(cutoff)) {
      dropped += a.parts.size;
      const set = this.changed.get(a.advertiserId);
      set?.delete(a);
      if (set?.size === 0) this.changed.delete(a.advertiserId);
    }
    return dropped;
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────

  private toRow(a: Aggregate, wm: number | null): LiveWindowRow {
    const closed = this.windows.isClosed(a.windowEnd, wm);
    return {
      windowStart: a.windowStart,
      windowEnd: a.windowEnd,
      advertiserId: a.advertiserId,
      campaignId: a.campaignId,
      impressions: a.impressions,
      spendMicros: microsJson(a.spendMicros),
      duplicates: a.duplicates,
      final: closed,
      maturity: a.windowStart < this.ledgerFinalBefore ? 'final' : closed ? 'provisional' : 'live',
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
}
