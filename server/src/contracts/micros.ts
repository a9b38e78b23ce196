/**
 * Money as exact integers, shared by every part that carries it: spend is micros (millionths of
 * the currency) as BigInt, printed in currency units with string arithmetic. No floating point.
 *
 * On JSON wires (impression-counts, the REST API, the live feed) micros are a JSON number while
 * exact as one (below 2^53) and a string of digits above: never a silently rounded number.
 * Written by the aggregator, api/, live/ and billing/; read back by the sink, live/ and ledger/.
 */

const UINT = /^\d{1,20}$/;
const MAX_UINT64 = (1n << 64n) - 1n;

/** Micros as a decimal string in currency units with exactly 6 decimals: 1250n → "0.001250". */
export function formatMicros(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const units = abs / 1_000_000n;
  const fraction = (abs % 1_000_000n).toString().padStart(6, '0');
  return `${negative ? '-' : ''}${units.toString()}.${fraction}`;
}

/**
 * A ClickHouse UInt64 as it arrives in JSONEachRow (a quoted decimal string, or a number when
 * small) as a BigInt; anything else is refused rather than guessed.
 */
export function parseUInt64(value: unknown, what: string): bigint {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) text = String(value);
  else throw new TypeError(`${what}: not an unsigned integer: ${JSON.stringify(value)}`);
  if (!UINT.test(text)) throw new TypeError(`${what}: not an unsigned integer: ${JSON.stringify(value)}`);
  const n = BigInt(text);
  if (n > MAX_UINT64) throw new TypeError(`${what}: beyond UInt64: ${text}`);
  return n;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Micros for a JSON wire: a number while exact as one, else a string of digits. */
export function microsJson(micros: bigint): number | string {
  return micros <= MAX_SAFE && micros >= -MAX_SAFE ? Number(micros) : micros.toString();
}
