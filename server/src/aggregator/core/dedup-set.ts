import type { IdHash } from './types.js';

/** Bytes of one id in a changelog chunk: the four hash words, little-endian. */
export const ID_BYTES = 16;

const INITIAL_SLOTS = 64;
/** Grow past this load. With ×1.5 growth the load then stays within ~0.53–0.8: 20–30 bytes per id. */
const MAX_LOAD = 0.8;
const GROWTH = 1.5;
const TWO_POW_32 = 4294967296;

/**
 * The impression ids seen in one window, as 128-bit hashes, in one flat Uint32Array (open addressing,
 * linear probing, 4 words per slot). A JS Set of strings would cost ~100 bytes per id; this costs
 * 16 bytes per slot, ≤ 32 per id held, and no garbage per insert. Word 0 = 0 marks an empty slot,
 * which hashImpressionId never produces (a 0 passed in anyway is stored as 1). No deletes: a window's
 * set is dropped as a whole.
 */
export class DedupSet {
  private slots: Uint32Array;
  private capacity: number;
  private count = 0;
  private growAt: number;

  constructor(initialSlots = INITIAL_SLOTS) {
    this.capacity = Math.max(4, Math.ceil(initialSlots));
    this.slots = new Uint32Array(this.capacity * 4);
    this.growAt = Math.floor(this.capacity * MAX_LOAD);
  }

  /** Number of ids held. */
  get size(): number {
    return this.count;
  }

  /** Bytes of the backing array, for the memory gauge. */
  get byteLength(): number {
    return this.slots.byteLength;
  }

  /** Adds `h`; true if it was not there yet. */
  add(h: IdHash): boolean {
    return this.insert(h[0] >>> 0 || 1, h[1] >>> 0, h[2] >>> 0, h[3] >>> 0);
  }

  has(h: IdHash): boolean {
    const a = h[0] >>> 0 || 1;
    const b = h[1] >>> 0;
    const c = h[2] >>> 0;
    const d = h[3] >>> 0;
    const s = this.slots;
    const cap = this.capacity;
    let i = slotOf(b, cap);
    while (true) {
      const o = i << 2;
      const w = s[o];
      if (w === 0) return false;
      if (w === a && s[o + 1] === b && s[o + 2] === c && s[o + 3] === d) return true;
      if (++i === cap) i = 0;
    }
  }

  /**
   * Restores ids from one changelog chunk (16 bytes per id, words little-endian); returns how many
   * were new. The chunk may sit at any byte offset (a Kafka message buffer), so it is read bytewise.
   */
  addChunk(ids: Uint8Array): number {
    if (ids.length % ID_BYTES !== 0) throw new RangeError(`dedup chunk of ${ids.length} bytes is not a multiple of ${ID_BYTES}`);
    // No up-front reserve: a replayed chunk would over-allocate; growth is amortised O(1) anyway.
    let added = 0;
    for (let o = 0; o < ids.length; o += ID_BYTES) {
      if (this.insert(readWord(ids, o) || 1, readWord(ids, o + 4), readWord(ids, o + 8), readWord(ids, o + 12))) added++;
    }
    return added;
  }

  /** Encodes hashes as one changelog chunk: 16 bytes per id, the four words little-endian. */
  static encodeChunk(hashes: readonly IdHash[]): Uint8Array {
    const out = new Uint8Array(hashes.length * ID_BYTES);
    for (let i = 0; i < hashes.length; i++) DedupSet.writeChunkId(out, i * ID_BYTES, hashes[i]);
    return out;
  }

  /** Writes one id at byte `offset` of a chunk being built. */
  static writeChunkId(chunk: Uint8Array, offset: number, h: IdHash): void {
    writeWord(chunk, offset, h[0]);
    writeWord(chunk, offset + 4, h[1]);
    writeWord(chunk, offset + 8, h[2]);
    writeWord(chunk, offset + 12, h[3]);
  }

  /** The ids of a chunk, for tests and tools (restore uses addChunk, which allocates nothing per id). */
  static decodeChunk(ids: Uint8Array): IdHash[] {
    if (ids.length % ID_BYTES !== 0) throw new RangeError(`dedup chunk of ${ids.length} bytes is not a multiple of ${ID_BYTES}`);
    const out: IdHash[] = [];
    for (let o = 0; o < ids.length; o += ID_BYTES) {
      out.push([readWord(ids, o), readWord(ids, o + 4), readWord(ids, o + 8), readWord(ids, o + 12)]);
    }
    return out;
  }

  /** a..d are unsigned words, a ≠ 0. */
  private insert(a: number, b: number, c: number, d: number): boolean {
    const s = this.slots;
    const cap = this.capacity;
    let i = slotOf(b, cap);
    while (true) {
      const o = i << 2;
      const w = s[o];
      if (w === 0) {
        s[o] = a;
        s[o + 1] = b;
        s[o + 2] = c;
        s[o + 3] = d;
        if (++this.count > this.growAt) this.resize(Math.ceil(cap * GROWTH));
        return true;
      }
      if (w === a && s[o + 1] === b && s[o + 2] === c && s[o + 3] === d) return false;
      if (++i === cap) i = 0;
    }
  }

  private resize(newCapacity: number): void {
    const old = this.slots;
    const s = new Uint32Array(newCapacity * 4);
    for (let o = 0; o < old.length; o += 4) {
      const a = old[o];
      if (a === 0) continue;
      const b = old[o + 1];
      let i = slotOf(b, newCapacity);
      while (s[i << 2] !== 0) if (++i === newCapacity) i = 0;
      const n = i << 2;
      s[n] = a;
      s[n + 1] = b;
      s[n + 2] = old[o + 2];
      s[n + 3] = old[o + 3];
    }
    this.slots = s;
    this.capacity = newCapacity;
    this.growAt = Math.floor(newCapacity * MAX_LOAD);
  }
}

/**
 * Home slot from word 1 (word 0 may have been nudged off zero): a multiply-shift range reduction,
 * since a ×1.5-grown capacity is not a power of two. Exact below 2²¹ slots; above, the product may
 * round up to `capacity`, hence the clamp (any deterministic in-range slot is correct).
 */
function slotOf(word: number, capacity: number): number {
  const i = Math.floor((word * capacity) / TWO_POW_32);
  return i < capacity ? i : capacity - 1;
}

function readWord(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

function writeWord(b: Uint8Array, o: number, w: number): void {
  b[o] = w;
  b[o + 1] = w >>> 8;
  b[o + 2] = w >>> 16;
  b[o + 3] = w >>> 24;
}
