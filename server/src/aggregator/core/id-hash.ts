import type { IdHash } from './types.js';

/**
 * The 128-bit hash the dedup sets store instead of the id itself (16 bytes instead of up to 128
 * plus string overhead). MurmurHash3_x86_128, seed 0, over the id's UTF-8 bytes: the chance that
 * two distinct ids in one window collide, for n ids, is about n²/2¹²⁹, i.e. never.
 * The hashes are persisted in the dedup changelog, so this function must never change.
 */

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

/** Reused UTF-8 scratch: hashing happens once per record and should not allocate. */
let scratch = new Uint8Array(512);
const encoder = new TextEncoder();

/**
 * Writes `s` as UTF-8 into `scratch` and returns the byte length. encodeInto (native) measured about
 * twice as fast as a charCodeAt copy loop even for short ASCII ids.
 */
function utf8IntoScratch(s: string): number {
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(s.length * 3);
  return encoder.encodeInto(s, scratch).written;
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** MurmurHash3_x86_128 (seed 0) of the UTF-8 bytes of `id`, as four unsigned words h1..h4. Word 0 is never 0. */
export function hashImpressionId(id: string): IdHash {
  const len = utf8IntoScratch(id);
  const d = scratch;
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  let h4 = 0;
  const blocksEnd = len & ~15;
  for (let i = 0; i < blocksEnd; i += 16) {
    let k1 = d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24);
    let k2 = d[i + 4] | (d[i + 5] << 8) | (d[i + 6] << 16) | (d[i + 7] << 24);
    let k3 = d[i + 8] | (d[i + 9] << 8) | (d[i + 10] << 16) | (d[i + 11] << 24);
    let k4 = d[i + 12] | (d[i + 13] << 8) | (d[i + 14] << 16) | (d[i + 15] << 24);

    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = rotl(h1, 19) + h2;
    h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0;

    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = rotl(h2, 17) + h3;
    h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0;

    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = rotl(h3, 15) + h4;
    h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0;

    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = rotl(h4, 13) + h1;
    h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0;
  }

  // Tail: the reference switch falls through from 15 down to 1; each lane is mixed once its bytes are in.
  const t = blocksEnd;
  const rest = len & 15;
  let k1 = 0;
  let k2 = 0;
  let k3 = 0;
  let k4 = 0;
  if (rest >= 13) {
    if (rest >= 15) k4 ^= d[t + 14] << 16;
    if (rest >= 14) k4 ^= d[t + 13] << 8;
    k4 ^= d[t + 12];
    h4 ^= Math.imul(rotl(Math.imul(k4, C4), 18), C1);
  }
  if (rest >= 9) {
    if (rest >= 12) k3 ^= d[t + 11] << 24;
    if (rest >= 11) k3 ^= d[t + 10] << 16;
    if (rest >= 10) k3 ^= d[t + 9] << 8;
    k3 ^= d[t + 8];
    h3 ^= Math.imul(rotl(Math.imul(k3, C3), 17), C4);
  }
  if (rest >= 5) {
    if (rest >= 8) k2 ^= d[t + 7] << 24;
    if (rest >= 7) k2 ^= d[t + 6] << 16;
    if (rest >= 6) k2 ^= d[t + 5] << 8;
    k2 ^= d[t + 4];
    h2 ^= Math.imul(rotl(Math.imul(k2, C2), 16), C3);
  }
  if (rest >= 1) {
    if (rest >= 4) k1 ^= d[t + 3] << 24;
    if (rest >= 3) k1 ^= d[t + 2] << 16;
    if (rest >= 2) k1 ^= d[t + 1] << 8;
    k1 ^= d[t];
    h1 ^= Math.imul(rotl(Math.imul(k1, C1), 15), C2);
  }

  h1 ^= len;
  h2 ^= len;
  h3 ^= len;
  h4 ^= len;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;

  // DedupSet marks empty slots with word 0 = 0; one id in 2³² gets a flipped low bit instead.
  if (h1 === 0) h1 = 1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}
