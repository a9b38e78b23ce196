/**
 * The one reader of ISO-8601 date-times with a mandatory zone (Z or ±hh:mm; seconds and fraction
 * optional): event `ts` strings (impression/) and the API's and CLI's time parameters (http/).
 *
 * Parsed by hand instead of Date.parse: Date.parse accepts zoneless strings (read as local time,
 * which differs between machines) and rolls impossible dates like 02-30 or 24:00 over.
 */
const ISO_WITH_ZONE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** Epoch ms of `s`, or undefined if it is not a zoned ISO date-time of a real date and time. */
export function parseZonedIsoTime(s: string): number | undefined {
  const m = ISO_WITH_ZONE.exec(s);
  if (m === null) return undefined;
  const [year, month, day, hour, minute] = [1, 2, 3, 4, 5].map((i) => Number(m[i]));
  const second = m[6] === undefined ? 0 : Number(m[6]);
  // Fraction digits beyond ms are truncated: the counting resolution is 1 ms.
  const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
  // Years below 100 would be mapped to 19xx by Date.UTC; every caller refuses them anyway (before 1970).
  if (year < 100 || month < 1 || month > 12 || day < 1) return undefined;
  const monthDays = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1];
  if (day > monthDays || hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMin = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
}
