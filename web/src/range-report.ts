/**
 * Reports over a date range (no Vue, no I/O): the REST paths of /counts and /breakdown for a
 * range, /counts' hour and day rows as the PeriodRows the live aggregations read, whether the
 * live feed alone covers a range, and the chart's labels for hours and days.
 */
import type { CountRow, Dimension } from './contracts.js';
import { DAY_MS, HOUR_MS, type ChartGranularity } from './date-range.js';
import type { PeriodRow } from './live-aggregates.js';

/** [from, to), epoch ms. */
export interface Bounds {
  from: number;
  to: number;
}

export interface ReportFilter extends Bounds {
  /** null: every advertiser (admin only). */
  advertiserId: string | null;
  campaignId?: string | null;
}

function query(filter: ReportFilter, extra: Record<string, string>): string {
  const q = new URLSearchParams();
  if (filter.advertiserId !== null) q.set('advertiser_id', filter.advertiserId);
  if (filter.campaignId) q.set('campaign_id', filter.campaignId);
  q.set('from', String(filter.from));
  q.set('to', String(filter.to));
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q.toString();
}

/** GET /api/v1/counts for the range, by hour or day. */
export function countsPath(filter: ReportFilter, granularity: ChartGranularity): string {
  return `/api/v1/counts?${query(filter, { granularity })}`;
}

/** GET /api/v1/breakdown of one dimension over the whole range (one row per value). */
export function breakdownPath(filter: ReportFilter, dimension: Dimension): string {
  return `/api/v1/breakdown?${query(filter, { dimension, granularity: 'total' })}`;
}

export const bucketMsOf = (g: ChartGranularity): number => (g === 'day' ? DAY_MS : HOUR_MS);

/** /counts rows as the live aggregations read them: an hour or a day is a (long) window. */
export function countPeriodRows(rows: readonly CountRow[]): PeriodRow[] {
  return rows.map((r) => ({
    windowStart: r.periodStart, advertiserId: r.advertiserId, campaignId: r.campaignId, impressions: r.impressions,
    spendMicros: r.spendMicros, duplicates: r.duplicates, final: r.maturity === 'final', maturity: r.maturity,
  }));
}

/** The range is exactly the UTC day `now` is in: the live feed holds every window of it. */
export function isCurrentDay(b: Bounds, now: number): boolean {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  return b.from === today && b.to === today + DAY_MS;
}

/** The range has not ended yet: its numbers still move, so they are refreshed. */
export function includesNow(b: Bounds, now: number): boolean {
  return b.to > now;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** An axis label of a bucket: "11-26" for days; "14:00" for hours, "11-26 14:00" when the chart spans days; "14:05" below. */
export function bucketAxisLabel(start: number, bucketMs: number, spansDays: boolean): string {
  if (bucketMs >= DAY_MS) return iso(start).slice(5, 10);
  const time = iso(start).slice(11, bucketMs < 60_000 ? 19 : 16);
  return spansDays ? `${iso(start).slice(5, 10)} ${time}` : time;
}

/** A bucket in a tooltip: "2025-11-26 (UTC)", "2025-11-26 14:00–15:00 UTC", "14:05–14:06 UTC". */
export function bucketTitle(start: number, bucketMs: number): string {
  if (bucketMs >= DAY_MS) return `${iso(start).slice(0, 10)} (UTC)`;
  const seconds = bucketMs < 60_000;
  const time = (ms: number) => iso(ms).slice(11, seconds ? 19 : 16);
  const date = bucketMs >= HOUR_MS ? `${iso(start).slice(0, 10)} ` : '';
  return `${date}${time(start)}–${time(start + bucketMs)} UTC`;
}
