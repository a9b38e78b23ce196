/**
 * An impression's home partition: the one partition whose state sees every copy of its id, so
 * dedup is exact. It must agree bit for bit with what producers do by default (Java clients'
 * default partitioner, librdkafka's `murmur2_random`), or every record would be forwarded.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Reused UTF-8 scratch so the per-record path allocates nothing; grown on demand. */
let scratch = new Uint8Array(512);
const encoder = new TextEncoder();

/** Kafka's `Utils.murmur2` (MurmurHash2, seed 0x9747b28c): signed 32-bit, as Java returns it. */
export function murmur2(bytes: Uint8Array): number {
  return murmur2Prefix(bytes, bytes.length);
}

function murmur2Prefix(data: Uint8Array, length: number): number {
  let h = SEED ^ length;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // Java's switch falls through 3 → 2 → 1; written as ifs (TS refuses fallthrough).
  const rest = length & 3;
  if (rest === 3) h ^= data[blocks + 2] << 16;
  if (rest >= 2) h ^= data[blocks + 1] << 8;
  if (rest >= 1) {
    h ^= data[blocks];
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** `Utils.toPositive(murmur2(utf8(id))) % partitions`, i.e. where Kafka's default partitioner puts key `id`. */
export function homePartition(impressionId: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  const need = impressionId.length * 3; // UTF-8 worst case per UTF-16 unit
  if (need > scratch.length) scratch = new Uint8Array(need);
  const { written } = encoder.encodeInto(impressionId, scratch);
  return (murmur2Prefix(scratch, written) & 0x7fffffff) % partitions;
}
