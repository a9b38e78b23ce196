import { checkChunk, ID_BYTES, readWord } from './dedup-chunk.js';
import type { IdHash } from './types.js';

const SHARDS = 64;
const INITIAL_SLOTS = 16;
/** Rebuild a shard when live plus retired entries pass this load (linear probing stays short below it)… */
const MAX_LOAD = 0.8;
/** …into a table where the live entries fill this much: 16 bytes a slot, so 20–29 bytes per id held. */
const TARGET_LOAD = 0.55;
const TWO_POW_32 = 4294967296;

/** One shard: open addressing, linear probing, 4 words a slot: hash words 0–2, then the tag. */
interface Shard {
  slots: Uint32Array;
  capacity: number;
  /** Slots in use, live or retired. */
  used: number;
}

/**
 * Every impression id one partition remembers for dedup, whatever window its copies are stamped
 * in: a retry re-stamped by its producer (even into another window) is still recognised. Each id
 * is stored with a tag, the window its first copy was counted in (windowStart / windowMs), so a
 * duplicate is attributed there and ids are forgotten window by window.
 *
 * Forgetting is O(1): retireBelow(tag) declares every id with a smaller tag retired. Retired slots
 * are reused by later inserts on their probe path and dropped when their shard is rebuilt, so
 * memory follows the ids held, not the ids ever seen. 64 shards (chosen by hash word 2) bound the
 * pause of one rebuild to 1/64 of the table.
 *
 * Ids are 96 bits here (hash words 0–2; word 3 only lives in the changelog): the chance that an
 * unseen id matches one of n held is n/2⁹⁶, about 1e-22 per lookup at 10M ids. Word 0 is never 0
 * (hashImpressionId guarantees it; a chunk's 0 is read as 1), so word 0 = 0 marks an empty slot.
 */
export class DedupIndex {
  private readonly shards: Shard[] = [];
  private floor = 0;

  constructor() {
    for (let i = 0; i < SHARDS; i++) this.shards.push({ slots: new Uint32Array(INITIAL_SLOTS * 4), capacity: INITIAL_SLOTS, used: 0 });
  }

  /** Bytes of the backing arrays, for the memory gauge. */
  get byteLength(): number {
    let bytes = 0;
    for (const s of this.shards) bytes += s.slots.byteLength;
    return bytes;
  }

  /** Ids with a tag below `tag` are forgotten from now on (their windows passed the dedup horizon). */
  retireBelow(tag: number): void {
    if (tag > this.floor) this.floor = tag;
  }

  /** The tag of `h` if it is held, else -1. */
  tagOf(h: IdHash): number {
    return this.probe(h[0] >>> 0 || 1, h[1] >>> 0, h[2] >>> 0, -1);
  }

  /** Adds `h` with `tag` unless held: returns -1 when added, else the tag of the held copy. */
  addOrGet(h: IdHash, tag: number): number {
    return this.probe(h[0] >>> 0 || 1, h[1] >>> 0, h[2] >>> 0, tag);
  }

  /** Restores the ids of one changelog chunk under `tag`; returns how many were not held yet. */
  addChunk(ids: Uint8Array, tag: number): number {
    checkChunk(ids);
    let added = 0;
    for (let o = 0; o < ids.length; o += ID_BYTES) {
      if (this.probe(readWord(ids, o) || 1, readWord(ids, o + 4), readWord(ids, o + 8), tag) < 0) added++;
    }
    return added;
  }

  /**
   * Looks up (a, b, c); if absent and tag ≥ 0, inserts it with that tag, into the first retired slot
   * on its probe path if there is one. Returns the held tag, or -1 when absent (inserted or not).
   */
  private probe(a: number, b: number, c: number, tag: number): number {
    const shard = this.shards[c >>> 26];
    const s = shard.slots;
    const cap = shard.capacity;
    const floor = this.floor;
    let reuse = -1;
    let i = slotOf(b, cap);
    for (;;) {
      const o = i << 2;
      const w = s[o];
      if (w === 0) break;
      const t = s[o + 3];
      if (t < floor) {
        if (reuse < 0) reuse = o;
      } else if (w === a && s[o + 1] === b && s[o + 2] === c) {
        return t;
      }
      if (++i === cap) i = 0;
    }
    if (tag < 0) return -1;
    const o = reuse >= 0 ? reuse : i << 2;
    s[o] = a;
    s[o + 1] = b;
    s[o + 2] = c;
    s[o + 3] = tag;
    if (reuse < 0 && ++shard.used > cap * MAX_LOAD) this.rebuild(shard);
    return -1;
  }

  /** Copies the live entries into a table sized for them: grows a full shard, shrinks one full of retired ids. */
  private rebuild(shard: Shard): void {
    const old = shard.slots;
    const floor = this.floor;
    let live = 0;
    for (let o = 0; o < old.length; o += 4) if (old[o] !== 0 && old[o + 3] >= floor) live++;
    const cap = Math.max(INITIAL_SLOTS, Math.ceil(live / TARGET_LOAD));
    const s = new Uint32Array(cap * 4);
    for (let o = 0; o < old.length; o += 4) {
      if (old[o] === 0 || old[o + 3] < floor) continue;
      let i = slotOf(old[o + 1], cap);
      while (s[i << 2] !== 0) if (++i === cap) i = 0;
      const n = i << 2;
      s[n] = old[o];
      s[n + 1] = old[o + 1];
      s[n + 2] = old[o + 2];
      s[n + 3] = old[o + 3];
    }
    shard.slots = s;
    shard.capacity = cap;
    shard.used = live;
  }
}

/**
 * Home slot from word 1: a multiply-shift range reduction (capacities are not powers of two).
 * Exact below 2²¹ slots; above, the product may round up to `capacity`, hence the clamp (any
 * deterministic in-range slot is correct).
 */
function slotOf(word: number, capacity: number): number {
  const i = Math.floor((word * capacity) / TWO_POW_32);
  return i < capacity ? i : capacity - 1;
}
