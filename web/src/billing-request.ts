/**
 * A billing export request as the dashboard's billing page builds it (no Vue, no I/O): periods
 * picked as whole UTC days, the end day inclusive in the UI and exclusive (`to` = the day after)
 * on the wire; the presets, the export URL, the file name and the check before it goes out.
 */
import type { BillingFormat, BillingGranularity } from './contracts.js';
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

/** The export URL: `to` is exclusive on the wire (the day after the last day). */
export function exportPath(req: Pick<BillingRequest, 'advertiserId' | 'fromDay' | 'toDay' | 'granularity'>, format: BillingFormat): string {
  const q = new URLSearchParams({
    advertiser_id: req.advertiserId,
    from: req.fromDay,
    to: dayStartMs(req.toDay) !== undefined ? nextDay(req.toDay) : req.toDay,
    granularity: req.granularity,
    format,
  });
  return `/api/v1/billing/export?${q.toString()}`;
}

/** tally-<advertiser>-<from>-<to>.<ext>, the days as picked (to inclusive). */
export function exportFileName(req: BillingRequest): string {
  const safe = req.advertiserId.replace(/[^A-Za-z0-9._-]/g, '_');
  return `tally-${safe}-${req.fromDay}-${req.toDay}.${req.format}`;
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
