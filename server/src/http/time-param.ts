/**
 * Time parameters of the HTTP routes (`from`, `to` of api/'s counts and billing/'s exports and
 * periods), and of the CLI commands that take the same values. Pure: no I/O, unit-tested.
 */

/** ClickHouse DateTime holds whole seconds up to 2^32 − 1 (year 2106). */
export const MAX_TIME_MS = 4_294_967_295_000;

/** ISO-8601 date-time with a mandatory zone (Z or ±hh:mm); seconds and fraction optional. */
const ISO_WITH_ZONE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;
const EPOCH_MS = /^\d{1,13}$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * A time parameter: epoch milliseconds (digits only) or ISO-8601 with a zone. Impossible dates
 * (02-30, 24:00) and zoneless strings are refused rather than guessed. Undefined if invalid or
 * outside what ClickHouse's DateTime holds (1970 to 2106).
 */
export function parseTimeParam(value: string): number | undefined {
  let t: number;
  if (EPOCH_MS.test(value)) {
    t = Number(value);
  } else {
    const m = ISO_WITH_ZONE.exec(value);
    if (m === null) return undefined;
    const [year, month, day, hour, minute] = [1, 2, 3, 4, 5].map((i) => Number(m[i]));
    const second = m[6] === undefined ? 0 : Number(m[6]);
    const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
    if (year < 1970 || month < 1 || month > 12 || day < 1) return undefined;
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    const monthDays = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1];
    if (day > monthDays || hour > 23 || minute > 59 || second > 59) return undefined;
    let offsetMin = 0;
    if (m[8] === undefined) {
      const oh = Number(m[10]);
      const om = Number(m[11]);
      if (oh > 23 || om > 59) return undefined;
      offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
    }
    t = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
  }
  return Number.isSafeInteger(t) && t >= 0 && t <= MAX_TIME_MS ? t : undefined;
}
