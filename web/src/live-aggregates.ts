/**
 * Pure aggregations over the live feed's rows (no Vue, no I/O): totals for a time range, the
 * per-campaign table, the per-window chart series. Impressions are summed as numbers (exact
 * below 2^53), spend as bigint micros so no sum can leave the exact range. The REST API's hour
 * and day rows go through the same functions (range-report.ts turns them into PeriodRows).
 */
import type { LiveWindowRow, Maturity } from './contracts.js';
import { DAY_MS, HOUR_MS } from './date-range.js';
import { leastMature } from './maturity.js';

export { DAY_MS, HOUR_MS };

export interface Totals {
  impressions: number;
  spendMicros: bigint;
  duplicates: number;
}

export interface CampaignTotals extends Totals {
  advertiserId: string;
  campaignId: string;
  /** Newest window with data, epoch ms. */
  lastWindow: number;
  /** The least settled of its windows' (live while one of them is open). */
  maturity: Maturity;
}

export interface WindowBucket {
  start: number;
  end: number;
  /** The bucket contains the window the clock is in: still filling up. */
  open: boolean;
  /** Every window of the bucket is final (watermark past end + lateness). */
  final: boolean;
  impressions: number;
  spendMicros: bigint;
  /** Impressions per series key (see seriesKey). */
  bySeries: Map<string, number>;
}

/** What the aggregations read of a row: a live window, or an hour or day of /counts (range-report.ts). */
export type PeriodRow = Pick<LiveWindowRow, 'windowStart' | 'advertiserId' | 'campaignId' | 'impressions' | 'spendMicros' | 'duplicates' | 'final' | 'maturity'>;

export const emptyTotals = (): Totals => ({ impressions: 0, spendMicros: 0n, duplicates: 0 });

/** Start of the UTC day containing `now`. */
export function utcDayStart(now: number): number {
  return Math.floor(now / DAY_MS) * DAY_MS;
}

/** Start of the window containing `now`. */
export function windowStartOf(now: number, windowMs: number): number {
  return Math.floor(now / windowMs) * windowMs;
}

/**
 * The first window start of "the last hour": the windows that started within the last 60
 * minutes, the open one included (60 windows of 60 s).
 */
export function lastHourStart(now: number, windowMs: number): number {
  return windowStartOf(now - HOUR_MS, windowMs) + windowMs;
}

/** Sum of the rows whose window starts in [from, to). */
export function totalsBetween(rows: Iterable<PeriodRow>, from: number, to = Number.POSITIVE_INFINITY): Totals {
  const t = emptyTotals();
  for (const r of rows) {
    if (r.windowStart < from || r.windowStart >= to) continue;
    t.impressions += r.impressions;
    t.spendMicros += BigInt(r.spendMicros);
    t.duplicates += r.duplicates;
  }
  return t;
}

/** Per (advertiser, campaign) totals of the windows starting at or after `from`, most impressions first. */
export function campaignTotals(rows: Iterable<PeriodRow>, from: number): CampaignTotals[] {
  const by = new Map<string, CampaignTotals>();
  for (const r of rows) {
    if (r.windowStart < from) continue;
    const key = `${r.advertiserId}|${r.campaignId}`;
    let c = by.get(key);
    if (!c) {
      c = { advertiserId: r.advertiserId, campaignId: r.campaignId, ...emptyTotals(), lastWindow: r.windowStart, maturity: r.maturity };
      by.set(key, c);
    }
    c.maturity = leastMature(c.maturity, r.maturity);
    c.impressions += r.impressions;
    c.spendMicros += BigInt(r.spendMicros);
    c.duplicates += r.duplicates;
    if (r.windowStart > c.lastWindow) c.lastWindow = r.windowStart;
  }
  return [...by.values()].sort((a, b) => b.impressions - a.impressions
    || a.advertiserId.localeCompare(b.advertiserId) || a.campaignId.localeCompare(b.campaignId));
}

/** The chart's series name of a row: the campaign, prefixed by its advertiser in the all-advertisers view. */
export function seriesKey(r: { advertiserId: string; campaignId: string }, allAdvertisers: boolean): string {
  return allAdvertisers ? `${r.advertiserId} / ${r.campaignId}` : r.campaignId;
}

/**
 * Buckets of `bucketMs` (a multiple of the window size) covering [from, now] (and before `to`,
 * when given), every bucket present even when empty, so the chart's time axis has no gaps.
 */
export function windowBuckets(
  rows: Iterable<PeriodRow>, opts: { from: number; to?: number; now: number; windowMs: number; bucketMs: number; allAdvertisers: boolean },
): WindowBucket[] {
  const { from, to = Number.POSITIVE_INFINITY, now, windowMs, bucketMs } = opts;
  const first = Math.floor(from / bucketMs) * bucketMs;
  const openWindow = windowStartOf(now, windowMs);
  const buckets: WindowBucket[] = [];
  for (let s = first; s <= now && s < to; s += bucketMs) {
    buckets.push({
      start: s, end: s + bucketMs, open: openWindow >= s && openWindow < s + bucketMs,
      final: true, impressions: 0, spendMicros: 0n, bySeries: new Map(),
    });
  }
  for (const r of rows) {
    if (r.windowStart < from) continue;
    const i = Math.floor((r.windowStart - first) / bucketMs);
    const b = buckets[i];
    if (!b) continue;
    b.impressions += r.impressions;
    b.spendMicros += BigInt(r.spendMicros);
    if (!r.final) b.final = false;
    const k = seriesKey(r, opts.allAdvertisers);
    b.bySeries.set(k, (b.bySeries.get(k) ?? 0) + r.impressions);
  }
  for (const b of buckets) if (b.open) b.final = false;
  return buckets;
}

/** The chart's bucket size: the window size, or a multiple of it so that an hour has at most 120 bars. */
export function chartBucketMs(windowMs: number): number {
  return windowMs * Math.max(1, Math.ceil(HOUR_MS / 120 / windowMs));
}
