import type { IdHash } from './types.js';

/**
 * The dedup changelog's value format: the ids first counted in one window during one transaction,
 * 16 bytes an id (the four IdHash words, little-endian), no header. Persisted, so it never changes.
 */

/** Bytes of one id in a changelog chunk. */
export const ID_BYTES = 16;

/** Encodes hashes as one changelog chunk. */
export function encodeChunk(hashes: readonly IdHash[]): Uint8Array {
  const out = new Uint8Array(hashes.length * ID_BYTES);
  for (let i = 0; i < hashes.length; i++) writeChunkId(out, i * ID_BYTES, hashes[i]);
  return out;
}

/** Writes one id at byte `offset` of a chunk being built. */
export function writeChunkId(chunk: Uint8Array, offset: number, h: IdHash): void {
  writeWord(chunk, offset, h[0]);
  writeWord(chunk, offset + 4, h[1]);
  writeWord(chunk, offset + 8, h[2]);
  writeWord(chunk, offset + 12, h[3]);
}

/** The ids of a chunk, for tests and tools (restore reads words in place and allocates nothing per id). */
export function decodeChunk(ids: Uint8Array): IdHash[] {
  checkChunk(ids);
  const out: IdHash[] = [];
  for (let o = 0; o < ids.length; o += ID_BYTES) {
    out.push([readWord(ids, o), readWord(ids, o + 4), readWord(ids, o + 8), readWord(ids, o + 12)]);
  }
  return out;
}

export function checkChunk(ids: Uint8Array): void {
  if (ids.length % ID_BYTES !== 0) throw new RangeError(`dedup chunk of ${ids.length} bytes is not a multiple of ${ID_BYTES}`);
}

/** Word at byte `o`, unsigned. A chunk may sit at any byte offset (a Kafka message buffer), so it is read bytewise. */
export function readWord(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

function writeWord(b: Uint8Array, o: number, w: number): void {
  b[o] = w;
  b[o + 1] = w >>> 8;
  b[o + 2] = w >>> 16;
  b[o + 3] = w >>> 24;
}
