/**
 * Strings of a few repeated values (advertiser, campaign and dimension values) read straight from
 * a record's bytes. Making a JS string from bytes is a native call and a new heap string every
 * time (Buffer#toString: 5.8 % of the aggregator's busy time with latin1Slice); the same dozen
 * campaign ids and country codes arrive on every other record. So the scanner looks them up here
 * by their bytes first: a direct-mapped table, one slot per hash, holding the bytes and the string
 * last seen there. A hit costs a hash and a compare over the bytes in JS; a miss (a new value, or
 * two values sharing a slot) makes the string and takes the slot. Unique values (impression ids)
 * do not come here: they would only evict the repeated ones.
 */

const SLOTS = 4096; // a power of two: the slot is the hash's low bits
/** Longer values are rare and cost more to compare than to slice: made directly. */
const MAX_CACHED_LENGTH = 64;

export class InternedStrings {
  private readonly bytes: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(SLOTS);
  private readonly strings: string[] = new Array<string>(SLOTS);

  /** The latin1 string of b[start, end): the cached one when these bytes were seen last in their slot. */
  get(b: Buffer, start: number, end: number): string {
    const len = end - start;
    if (len > MAX_CACHED_LENGTH) return b.toString('latin1', start, end);
    let h = 0x811c9dc5 ^ len; // FNV-1a over the bytes
    for (let k = start; k < end; k++) h = Math.imul(h ^ b[k], 0x01000193);
    const slot = (h ^ (h >>> 15)) & (SLOTS - 1);
    const seen = this.bytes[slot];
    if (seen !== undefined && seen.length === len) {
      let k = 0;
      while (k < len && seen[k] === b[start + k]) k++;
      if (k === len) return this.strings[slot];
    }
    const s = b.toString('latin1', start, end);
    const copy = new Uint8Array(len);
    copy.set(b.subarray(start, end));
    this.bytes[slot] = copy;
    this.strings[slot] = s;
    return s;
  }
}
