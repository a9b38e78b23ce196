/**
 * Tumbling event-time windows. (An output row's key, `rowKey`, is part of the counts topic's
 * contract: contracts/count-record.ts.)
 */

/** Start of the tumbling window holding `ts`: aligned to multiples of windowMs since the epoch. */
export function windowStartOf(ts: number, windowMs: number): number {
  // Remainder arithmetic instead of Math.floor(ts / windowMs): exact for every integer ms, and the
  // double modulo keeps it a floor for negative ts too (never expected: the contract says ts > 0).
  const r = ts % windowMs;
  return r < 0 ? ts - r - windowMs : ts - r;
}
