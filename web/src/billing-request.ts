/**
 * A billing export request as the dashboard's billing page builds it (no Vue, no I/O): periods
 * picked as whole UTC days, the end day inclusive in the UI and exclusive (`to` = the day after)
 * on the wire; the presets, the export URL, the file name and the check before it goes out.
 */
import type { BillingFormat, BillingGranularity, Dimension } from './contracts.js';
import { dayStartMs, nextDay, presetDays, type DayRange } from './date-range.js';

export { dayStartMs, nextDay, utcDay } from './date-range.js';

/** What the user picked: whole UTC days, `toDay` inclusive. */
export interface BillingRequest {
  advertiserId: string;
  /** YYYY-MM-DD, the first day. */
  fromDay: string;
  /** YYYY-MM-DD, the last day (inclusive). */
  toDay: string;
  granularity: BillingGranularity;
  format: BillingFormat;
  /** The dimensions of the statement's breakdown section (`breakdown=`), in the order asked; empty: no section. */
  breakdown: readonly Dimension[];
}

export type PeriodPreset = 'yesterday' | 'last7' | 'month' | 'lastMonth' | 'custom';

export const PERIOD_PRESETS: ReadonlyArray<{ id: PeriodPreset; label: string }> = [
  { id: 'yesterday', label: 'Yesterday' },
  { id: 'last7', label: 'Last 7 days' },
  { id: 'month', label: 'This month so far' },
  { id: 'lastMonth', label: 'Last month' },
  { id: 'custom', label: 'Custom' },
];

/** A preset's days (inclusive) as of `now` (epoch ms, the server's clock): the dashboard's own presets (date-range.ts). */
export function presetRange(preset: Exclude<PeriodPreset, 'custom'>, now: number): DayRange {
  return presetDays(preset, now);
}

/** The export URL: `to` is exclusive on the wire (the day after the last day); `breakdown` only when one is asked for. */
export function exportPath(req: Omit<BillingRequest, 'format'>, format: BillingFormat): string {
  const q = new URLSearchParams({
    advertiser_id: req.advertiserId,
    from: req.fromDay,
    to: dayStartMs(req.toDay) !== undefined ? nextDay(req.toDay) : req.toDay,
    granularity: req.granularity,
    format,
  });
  if (req.breakdown.length > 0) q.set('breakdown', req.breakdown.join(','));
  return `/api/v1/billing/export?${q.toString()}`;
}

/**
 * tally-<advertiser>-<from>-<to>[-by-<dimension>…].<ext>, the days as picked (to inclusive); a
 * breakdown named as the server names it (billing-router's exportFileName: `-by-country-device`).
 */
export function exportFileName(req: BillingRequest): string {
  const safe = req.advertiserId.replace(/[^A-Za-z0-9._-]/g, '_');
  const by = req.breakdown.length === 0 ? '' : `-by-${req.breakdown.join('-')}`;
  return `tally-${safe}-${req.fromDay}-${req.toDay}${by}.${req.format}`;
}

/** Checks the picked request before it goes out; null when fine, else the message and the field. */
export function checkRequest(req: BillingRequest): { message: string; parameter: string } | null {
  if (!req.advertiserId) return { message: 'Pick an advertiser.', parameter: 'advertiser_id' };
  const from = dayStartMs(req.fromDay);
  const to = dayStartMs(req.toDay);
  if (from === undefined) return { message: 'The first day is not a valid date (YYYY-MM-DD).', parameter: 'from' };
  if (to === undefined) return { message: 'The last day is not a valid date (YYYY-MM-DD).', parameter: 'to' };
  if (to < from) return { message: 'The last day is before the first day.', parameter: 'to' };
  return null;
}
