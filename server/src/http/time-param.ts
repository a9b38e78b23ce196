/**
 * Time parameters of the HTTP routes (`from`, `to` of api/'s counts and billing/'s exports and
 * periods), and of the CLI commands that take the same values. Pure: no I/O, unit-tested.
 */
import { parseZonedIsoTime } from '../contracts/zoned-time.js';

/** ClickHouse DateTime holds whole seconds up to 2^32 − 1 (year 2106). */
export const MAX_TIME_MS = 4_294_967_295_000;

const EPOCH_MS = /^\d{1,13}$/;

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
    const iso = parseZonedIsoTime(value);
    if (iso === undefined) return undefined;
    t = iso;
  }
  return Number.isSafeInteger(t) && t >= 0 && t <= MAX_TIME_MS ? t : undefined;
}
