/**
 * Strings of a few repeated values (advertiser, campaign and dimension values) read straight from
 * a record's bytes. Making a JS string from bytes is a native call and a new heap string every
 * time (Buffer#toString: 5.8 % of the aggregator's busy time with latin1Slice); the same dozen
 * campaign ids and country codes arrive on every other record. So the scanner looks them up here
 * by their bytes first: a direct-mapped table, one slot per hash, holding the bytes and the string
 * last remembered there. A hit costs a hash and a compare over the bytes in JS; the caller
 * validates a value only on a miss (what it remembers was valid) and remembers it, taking the slot
 * from whatever held it. Unique values (impression ids) do not come here: they would only evict
 * the repeated ones.
 */

const SLOTS = 4096; // a power of two: the slot is the hash's low bits
/** Longer values are rare and cost more to compare than to slice: never remembered. */
const MAX_CACHED_LENGTH = 64;

function slotOf(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5 ^ (end - start); // FNV-1a over the bytes
  for (let k = start; k < end; k++) h = Math.imul(h ^ b[k], 0x01000193);
  return (h ^ (h >>> 15)) & (SLOTS - 1);
}

export class InternedStrings {
  private readonly bytes: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(SLOTS);
  private readonly strings: string[] = new Array<string>(SLOTS);

  /** The string remembered for exactly the bytes b[start, end), if its slot still holds them. */
  lookup(b: Buffer, start: number, end: number): string | undefined {
    const len = end - start;
    if (len > MAX_CACHED_LENGTH) return undefined;
    const slot = slotOf(b, start, end);
    const seen = this.bytes[slot];
    if (seen === undefined || seen.length !== len) return undefined;
    let k = 0;
    while (k < len && seen[k] === b[start + k]) k++;
    return k === len ? this.strings[slot] : undefined;
  }

  /** The latin1 string of b[start, end), remembered (a copy of the bytes) for the next lookup. */
  remember(b: Buffer, start: number, end: number): string {
    const s = b.toString('latin1', start, end);
    const len = end - start;
    if (len > MAX_CACHED_LENGTH) return s;
    const slot = slotOf(b, start, end);
    const copy = new Uint8Array(len);
    copy.set(b.subarray(start, end));
    this.bytes[slot] = copy;
    this.strings[slot] = s;
    return s;
  }
}
