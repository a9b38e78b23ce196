/**
 * Reporting periods as whole UTC days (no Vue, no I/O): the presets of the date range picker and
 * of the billing page, the [from, to) a range covers on the wire (`to` exclusive: midnight after
 * the last day), the check before it goes out, the URL query that keeps the choice, the chart's
 * default granularity, and the same range in the viewer's own time zone.
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
/** The API's longest range (/counts and /breakdown: api/query-params.ts). */
export const MAX_RANGE_DAYS = 93;

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

/** Whole UTC days, both included: YYYY-MM-DD. */
export interface DayRange {
  fromDay: string;
  toDay: string;
}

/** Every preset a page offers: "last N days" are the N complete days before today, as on ad platforms' reports. */
export type DayPreset = 'today' | 'yesterday' | 'last7' | 'last30' | 'month' | 'lastMonth';

/** The dashboard's date range picker: its presets, or days picked by hand. */
export type RangePreset = Exclude<DayPreset, 'lastMonth'> | 'custom';

export const RANGE_PRESETS: ReadonlyArray<{ id: RangePreset; label: string }> = [
  { id: 'today', label: 'Today' },
  { id: 'yesterday', label: 'Yesterday' },
  { id: 'last7', label: 'Last 7 days' },
  { id: 'last30', label: 'Last 30 days' },
  { id: 'month', label: 'This month' },
  { id: 'custom', label: 'Custom' },
];

/** What the picker holds: the preset and the days it stands for now. */
export interface RangeChoice extends DayRange {
  preset: RangePreset;
}

export type ChartGranularity = 'hour' | 'day';

/** Epoch ms → its UTC day, YYYY-MM-DD. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** YYYY-MM-DD → epoch ms of its midnight UTC; undefined when not a real date. */
export function dayStartMs(day: string): number | undefined {
  if (!DAY_RE.test(day)) return undefined;
  const ms = Date.parse(`${day}T00:00:00Z`);
  return Number.isNaN(ms) || utcDay(ms) !== day ? undefined : ms;
}

/** The day after `day` (YYYY-MM-DD). */
export function nextDay(day: string): string {
  const ms = dayStartMs(day);
  if (ms === undefined) throw new RangeError(`not a date: ${day}`);
  return utcDay(ms + DAY_MS);
}

/** A preset's days as of `now` (epoch ms, the server's clock). */
export function presetDays(preset: DayPreset, now: number): DayRange {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const d = new Date(today);
  const monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const lastDays = (n: number) => ({ fromDay: utcDay(today - n * DAY_MS), toDay: utcDay(today - DAY_MS) });
  switch (preset) {
    case 'today':
      return { fromDay: utcDay(today), toDay: utcDay(today) };
    case 'yesterday':
      return lastDays(1);
    case 'last7':
      return lastDays(7);
    case 'last30':
      return lastDays(30);
    case 'month':
      return { fromDay: utcDay(monthStart), toDay: utcDay(today) };
    case 'lastMonth':
      return { fromDay: utcDay(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 1)), toDay: utcDay(monthStart - DAY_MS) };
  }
}

/** [from, to) in epoch ms: midnight UTC of the first day to midnight after the last; undefined if a day is not a date. */
export function rangeBounds(r: DayRange): { from: number; to: number } | undefined {
  const from = dayStartMs(r.fromDay);
  const last = dayStartMs(r.toDay);
  return from === undefined || last === undefined ? undefined : { from, to: last + DAY_MS };
}

/** Whole days in the range (0 when it is invalid). */
export function dayCount(r: DayRange): number {
  const b = rangeBounds(r);
  return b === undefined || b.to <= b.from ? 0 : (b.to - b.from) / DAY_MS;
}

/** Checks picked days before they go out; null when fine, else the message and the field. */
export function checkRange(r: DayRange): { message: string; parameter: 'from' | 'to' } | null {
  const b = rangeBounds(r);
  if (dayStartMs(r.fromDay) === undefined) return { message: 'The first day is not a valid date (YYYY-MM-DD).', parameter: 'from' };
  if (b === undefined) return { message: 'The last day is not a valid date (YYYY-MM-DD).', parameter: 'to' };
  if (b.to <= b.from) return { message: 'The last day is before the first day.', parameter: 'to' };
  if (b.to - b.from > MAX_RANGE_DAYS * DAY_MS) return { message: `A range may span at most ${MAX_RANGE_DAYS} days.`, parameter: 'to' };
  return null;
}

const PRESET_IDS = new Set<string>(RANGE_PRESETS.map((p) => p.id));

/**
 * The picker's choice from the URL (`?range=last7`, or `?range=custom&from=…&to=…`); a preset
 * stands for its days as of `now`, so a shared link means the same preset for whoever opens it.
 * Anything missing or unknown is today.
 */
export function rangeFromQuery(query: { range?: unknown; from?: unknown; to?: unknown }, now: number): RangeChoice {
  const preset = typeof query.range === 'string' && PRESET_IDS.has(query.range) ? (query.range as RangePreset) : 'today';
  if (preset !== 'custom') return { preset, ...presetDays(preset, now) };
  const today = utcDay(now);
  const day = (v: unknown) => (typeof v === 'string' && v !== '' ? v : today);
  return { preset, fromDay: day(query.from), toDay: day(query.to) };
}

/** The URL query of a choice (the inverse of rangeFromQuery): days only for custom ranges. */
export function rangeQuery(choice: RangeChoice): Record<string, string> {
  return choice.preset === 'custom' ? { range: 'custom', from: choice.fromDay, to: choice.toDay } : { range: choice.preset };
}

/** Hours for a range of up to two days (at most 48 bars), days beyond. */
export function defaultGranularity(r: DayRange): ChartGranularity {
  return dayCount(r) <= 2 ? 'hour' : 'day';
}

/** "2025-11-20 00:00 – 2025-11-27 00:00 UTC": the range's [from, to) as the API reads it. */
export function utcRangeLabel(from: number, to: number): string {
  const at = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  return `${at(from)} – ${at(to)} UTC`;
}

/** A moment in a time zone: "2025-11-20 01:00" and its offset "UTC+1" (Intl's "GMT+1"; plain "GMT" is UTC+0). */
function zonedParts(ms: number, timeZone: string): { at: string; offset: string } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'shortOffset',
  }).formatToParts(new Date(ms));
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
  const gmt = part('timeZoneName');
  const offset = gmt === 'GMT' ? 'UTC+0' : gmt.replace(/^GMT/, 'UTC');
  return { at: `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}`, offset };
}

/**
 * The same [from, to) in a time zone (the viewer's, by default):
 * "2025-11-20 01:00 – 2025-11-27 01:00 Europe/Berlin (UTC+1)"; each end with its own offset when
 * a daylight-saving change falls in between.
 */
export function localRangeLabel(from: number, to: number, timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone): string {
  const a = zonedParts(from, timeZone);
  const b = zonedParts(to, timeZone);
  return a.offset === b.offset
    ? `${a.at} – ${b.at} ${timeZone} (${a.offset})`
    : `${a.at} (${a.offset}) – ${b.at} (${b.offset}) ${timeZone}`;
}
