import { MAX_DIMENSION_VALUE_LENGTH, UNKNOWN_VALUE } from '../contracts/dimensions.js';
import { NO_DIMENSION_VALUES, NO_DIMENSIONS, type DimensionFields } from './dimension-fields.js';
import { InternedStrings } from './interned-strings.js';
import type { Impression } from './types.js';

/**
 * The hot path of parseImpression: one pass over the bytes of the common shape — an ASCII JSON
 * object whose five contract fields are plain strings and integers — without building a JS string
 * or object for the whole document. It only ever says "valid, and this is the impression" or
 * "not sure" (null): anything unusual (escapes, non-ASCII, fractions, exponents, ISO timestamps,
 * nested values, repeated keys, any invalid value) returns null and parseImpression takes the full
 * JSON.parse path, which decides and explains. So for every input it accepts, the result is what
 * the full path would return (test/unit/scan-impression.test.ts checks that on many shapes).
 * The dimension fields asked for (DimensionFields) are read as plain strings the same way.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

const MAX_ID_LENGTH = 128;
/** More digits than this can exceed 2^53 (and every accepted bound, 8.64e15): full path. */
const MAX_INTEGER_DIGITS = 16;

/** Bytes allowed in an id: [A-Za-z0-9._:-], the contract's pattern. */
const ID_BYTE = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  ID_BYTE[c] = /[A-Za-z0-9._:-]/.test(ch) ? 1 : 0;
}

// Field bits: which contract fields were seen (a repeated one means "full path": JSON.parse keeps the last).
const F_ID = 1;
const F_TS = 2;
const F_ADV = 4;
const F_CMP = 8;
const F_COST = 16;
const REQUIRED = F_ID | F_TS | F_ADV | F_CMP;

const KEYS: Array<[number, Uint8Array]> = [
  [F_ID, Buffer.from('impression_id')],
  [F_TS, Buffer.from('ts')],
  [F_ADV, Buffer.from('advertiser_id')],
  [F_CMP, Buffer.from('campaign_id')],
  [F_COST, Buffer.from('cost_micros')],
];

function sameBytes(b: Buffer, start: number, end: number, key: Uint8Array): boolean {
  const len = end - start;
  if (key.length !== len) return false;
  let k = 0;
  while (k < len && b[start + k] === key[k]) k++;
  return k === len;
}

/** Which contract field a key is (0: not one), compared on the bytes. */
function fieldOf(b: Buffer, start: number, end: number): number {
  for (const [field, key] of KEYS) if (sameBytes(b, start, end, key)) return field;
  return 0;
}

/** Which asked-for dimension a key is (its index), or -1. */
function dimensionOf(b: Buffer, start: number, end: number, fields: DimensionFields): number {
  const keys = fields.keys;
  for (let d = 0; d < keys.length; d++) if (sameBytes(b, start, end, keys[d])) return d;
  return -1;
}

const DEL = 0x7f;

/**
 * Advertiser, campaign and dimension values repeat from record to record: their strings are reused.
 * Two tables, because a remembered value skips its check: a valid dimension value ("a b") is no valid id.
 */
const repeatedIds = new InternedStrings();
const repeatedDimensionValues = new InternedStrings();

/** A plain ASCII string value of a dimension: itself when usable, else `unknown` (as dimensionValueOf decides). */
function dimensionValue(b: Buffer, start: number, end: number): string {
  const known = repeatedDimensionValues.lookup(b, start, end);
  if (known !== undefined) return known;
  const len = end - start;
  if (len < 1 || len > MAX_DIMENSION_VALUE_LENGTH) return UNKNOWN_VALUE;
  for (let k = start; k < end; k++) if (b[k] === DEL) return UNKNOWN_VALUE;
  return repeatedDimensionValues.remember(b, start, end);
}

/** Whether an id field's value (impression, advertiser, campaign) matches the contract's pattern. */
function isIdBytes(b: Buffer, start: number, end: number): boolean {
  const len = end - start;
  if (len < 1 || len > MAX_ID_LENGTH) return false;
  for (let k = start; k < end; k++) if (ID_BYTE[b[k]] === 0) return false;
  return true;
}

/** An impression id: unique, so made directly, never remembered. */
function idValue(b: Buffer, start: number, end: number): string | null {
  return isIdBytes(b, start, end) ? b.toString('latin1', start, end) : null;
}

/** An advertiser or campaign id: remembered ones need no second check (only valid ones are remembered). */
function repeatedIdValue(b: Buffer, start: number, end: number): string | null {
  const known = repeatedIds.lookup(b, start, end);
  if (known !== undefined) return known;
  return isIdBytes(b, start, end) ? repeatedIds.remember(b, start, end) : null;
}

function skipWhitespace(b: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** End of a plain string starting after its opening quote (index of the closing quote), or -1 if it needs the full path. */
function plainStringEnd(b: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = b[i];
    if (c === QUOTE) return i;
    // Escapes, control characters (invalid JSON) and non-ASCII (UTF-8 to validate): full path.
    if (c === BACKSLASH || c < 0x20 || c >= 0x80) return -1;
    i++;
  }
  return -1;
}

export function scanImpression(b: Buffer, fields: DimensionFields = NO_DIMENSIONS): Impression | null {
  const end = b.length;
  let i = skipWhitespace(b, 0, end);
  if (b[i] !== OPEN) return null;
  i = skipWhitespace(b, i + 1, end);

  let seen = 0;
  let impressionId = '';
  let advertiserId = '';
  let campaignId = '';
  let ts = 0;
  let costMicros = 0;
  const wanted = fields.keys.length;
  let dimensionValues: string[] | null = null;
  let dimensionsSeen = 0;

  if (b[i] === CLOSE) return null; // {} lacks every field: the full path names the first missing one
  for (;;) {
    if (b[i] !== QUOTE) return null;
    const keyStart = i + 1;
    const keyEnd = plainStringEnd(b, keyStart, end);
    if (keyEnd < 0) return null;
    const field = fieldOf(b, keyStart, keyEnd);
    if ((seen & field) !== 0) return null;
    seen |= field;
    const dimension = field === 0 && wanted > 0 ? dimensionOf(b, keyStart, keyEnd, fields) : -1;
    if (dimension >= 0) {
      if ((dimensionsSeen & (1 << dimension)) !== 0) return null;
      dimensionsSeen |= 1 << dimension;
    }
    i = skipWhitespace(b, keyEnd + 1, end);
    if (b[i] !== COLON) return null;
    i = skipWhitespace(b, i + 1, end);

    const c = b[i];
    if (c === QUOTE) {
      const valueStart = i + 1;
      const valueEnd = plainStringEnd(b, valueStart, end);
      if (valueEnd < 0) return null;
      if (field === F_ID || field === F_ADV || field === F_CMP) {
        const v = field === F_ID ? idValue(b, valueStart, valueEnd) : repeatedIdValue(b, valueStart, valueEnd);
        if (v === null) return null;
        if (field === F_ID) impressionId = v;
        else if (field === F_ADV) advertiserId = v;
        else campaignId = v;
      } else if (field !== 0) {
        return null; // ts as an ISO string, or a string price: full path
      } else if (dimension >= 0) {
        dimensionValues ??= new Array<string>(wanted).fill(UNKNOWN_VALUE);
        dimensionValues[dimension] = dimensionValue(b, valueStart, valueEnd);
      }
      i = valueEnd + 1;
    } else if (c >= ZERO && c <= NINE) {
      // A JSON integer: no leading zero unless it is 0; fractions and exponents go the full path.
      let k = i;
      let n = 0;
      while (k < end && b[k] >= ZERO && b[k] <= NINE) {
        n = n * 10 + (b[k] - ZERO);
        k++;
      }
      const digits = k - i;
      if (digits > MAX_INTEGER_DIGITS || (c === ZERO && digits > 1)) return null;
      const next = b[k];
      if (next === 0x2e || next === 0x65 || next === 0x45) return null;
      if (field === F_TS) {
        if (n <= 0 || n > 8.64e15) return null;
        ts = n;
      } else if (field === F_COST) {
        if (n > 1_000_000_000_000) return null;
        costMicros = n;
      } else if (field !== 0 || dimension >= 0) {
        return null; // an id or a dimension given as a number
      }
      i = k;
    } else {
      // Negative numbers, literals, objects, arrays: only the full path judges them.
      if (field !== 0 || dimension >= 0 || c === MINUS || c === undefined) return null;
      const literal = c === 0x74 ? 'true' : c === 0x66 ? 'false' : c === 0x6e ? 'null' : '';
      if (literal === '' || i + literal.length > end || b.toString('latin1', i, i + literal.length) !== literal) return null;
      i += literal.length;
    }

    i = skipWhitespace(b, i, end);
    if (b[i] === COMMA) {
      i = skipWhitespace(b, i + 1, end);
      continue;
    }
    if (b[i] !== CLOSE) return null;
    i = skipWhitespace(b, i + 1, end);
    if (i !== end || (seen & REQUIRED) !== REQUIRED) return null;
    if (wanted > 0) dimensionValues ??= new Array<string>(wanted).fill(UNKNOWN_VALUE);
    return { impressionId, ts, advertiserId, campaignId, costMicros, dimensionValues: dimensionValues ?? NO_DIMENSION_VALUES };
  }
}
