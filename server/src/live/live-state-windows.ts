/**
 * LiveState's rows: the latest version of every window row `(windowStart, advertiser, campaign,
 * sourcePartition)`, summed per (window, advertiser, campaign) over source partitions, indexed by
 * window and by advertiser, with the windows not yet final queued by their end. Pure.
 */
import type { WindowRow } from '../contracts/count-record.js';

/**
 * One version of one source partition's row, as the aggregator wrote it (or ClickHouse holds it);
 * the feed derives `final` from the watermarks itself.
 */
export type LiveRowInput = Omit<WindowRow, 'final' | 'revised'>;

interface PartRow {
  impressions: number;
  spendMicros: bigint;
  duplicates: number;
  version: number;
}

/** One (window, advertiser, campaign): the sum over its source partitions' rows. */
export interface Aggregate {
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

export interface FinalTotals {
  /** Distinct final windows held. */
  windows: number;
  impressions: bigint;
  spendMicros: bigint;
  /** First and last final window start held (null when none). */
  firstWindowStart: number | null;
  lastWindowStart: number | null;
}

function aggKey(advertiserId: string, campaignId: string): string {
  return `${advertiserId}\n${campaignId}`;
}

function advertiserKey(a: Pick<Aggregate, 'windowStart' | 'campaignId'>): string {
  return `${a.windowStart}\n${a.campaignId}`;
}

export class LiveWindows {
  private readonly windows = new Map<number, WindowEntry>();
  /** advertiser → (window start + '\n' + campaign → aggregate), for per-advertiser snapshots. */
  private readonly byAdvertiser = new Map<string, Map<string, Aggregate>>();
  /** Windows not yet final, ordered by windowEnd (ascending); entries from notFinalHead on are live. */
  private notFinal: WindowEntry[] = [];
  private notFinalHead = 0;
  private rowCount = 0;
  private duplicatesHeld = 0;
  private staleCount = 0;

  constructor(private readonly allowedLatenessMs: number) {}

  /** Whether a window ending at `windowEnd` is closed at `watermark` (null: a partition never published). */
  isClosed(windowEnd: number, watermark: number | null): boolean {
    return watermark !== null && windowEnd + this.allowedLatenessMs <= watermark;
  }

  /**
   * Merges one version of a row: kept if its version is higher than the one held. Returns the
   * aggregate it changed, or null for a stale version. A new window not final yet (`isFinal`) is
   * queued for closedBy.
   */
  merge(r: LiveRowInput, isFinal: (windowEnd: number) => boolean): Aggregate | null {
    let win = this.windows.get(r.windowStart);
    if (win === undefined) {
      win = { windowStart: r.windowStart, windowEnd: r.windowEnd, aggregates: new Map() };
      this.windows.set(r.windowStart, win);
      if (!isFinal(win.windowEnd)) this.insertNotFinal(win);
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
      adv.set(advertiserKey(agg), agg);
    }
    const held = agg.parts.get(r.sourcePartition);
    if (held !== undefined && held.version >= r.version) {
      this.staleCount++;
      return null;
    }
    const prev = held ?? { impressions: 0, spendMicros: 0n, duplicates: 0, version: -1 };
    agg.impressions += r.impressions - prev.impressions;
    agg.spendMicros += r.spendMicros - prev.spendMicros;
    agg.duplicates += r.duplicates - prev.duplicates;
    this.duplicatesHeld += r.duplicates - prev.duplicates;
    if (held === undefined) this.rowCount++;
    agg.parts.set(r.sourcePartition, { impressions: r.impressions, spendMicros: r.spendMicros, duplicates: r.duplicates, version: r.version });
    return agg;
  }

  /** The aggregates of the windows `watermark` closed since the previous call. */
  closedBy(watermark: number): Aggregate[] {
    const closed: Aggregate[] = [];
    while (this.notFinalHead < this.notFinal.length) {
      const w = this.notFinal[this.notFinalHead];
      if (!this.isClosed(w.windowEnd, watermark)) break;
      this.notFinalHead++;
      closed.push(...w.aggregates.values());
    }
    this.compactNotFinal();
    return closed;
  }

  /** The aggregates of the windows starting in [from, to). */
  startingIn(from: number, to: number): Aggregate[] {
    const out: Aggregate[] = [];
    for (const w of this.windows.values()) if (w.windowStart >= from && w.windowStart < to) out.push(...w.aggregates.values());
    return out;
  }

  /** Every aggregate of one advertiser, or of all (null). */
  aggregates(advertiserId: string | null): Aggregate[] {
    if (advertiserId !== null) return [...this.byAdvertiser.get(advertiserId)?.values() ?? []];
    const out: Aggregate[] = [];
    for (const w of this.windows.values()) out.push(...w.aggregates.values());
    return out;
  }

  /** Advertisers with at least one row held. */
  advertisers(): string[] {
    return [...this.byAdvertiser.keys()].sort();
  }

  /** Totals of the windows closed at `watermark`. */
  totalsClosedBy(watermark: number): FinalTotals {
    const totals: FinalTotals = { windows: 0, impressions: 0n, spendMicros: 0n, firstWindowStart: null, lastWindowStart: null };
    for (const w of this.windows.values()) {
      if (!this.isClosed(w.windowEnd, watermark)) continue;
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

  /** Drops the windows starting before `cutoff`; returns their aggregates. */
  dropBefore(cutoff: number): Aggregate[] {
    const dropped: Aggregate[] = [];
    let droppedWindow = false;
    for (const [start, w] of this.windows) {
      if (start >= cutoff) continue;
      droppedWindow = true;
      this.windows.delete(start);
      for (const a of w.aggregates.values()) {
        dropped.push(a);
        this.rowCount -= a.parts.size;
        this.duplicatesHeld -= a.duplicates;
        const adv = this.byAdvertiser.get(a.advertiserId);
        adv?.delete(advertiserKey(a));
        if (adv?.size === 0) this.byAdvertiser.delete(a.advertiserId);
      }
    }
    if (droppedWindow) {
      this.notFinal = this.notFinal.slice(this.notFinalHead).filter((w) => w.windowStart >= cutoff);
      this.notFinalHead = 0;
    }
    return dropped;
  }

  /** Sum of the duplicates column over the rows held. */
  get duplicates(): number {
    return this.duplicatesHeld;
  }

  get stats(): { rows: number; aggregates: number; windows: number; staleIgnored: number } {
    let aggregates = 0;
    for (const w of this.windows.values()) aggregates += w.aggregates.size;
    return { rows: this.rowCount, aggregates, windows: this.windows.size, staleIgnored: this.staleCount };
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
