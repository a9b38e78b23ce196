/**
 * The dedup changelog's keys: one record per (window, chunk) holding the 16-byte hashes of the ids
 * first seen in that window during one transaction. Compacted; an evicted window's chunks are
 * deleted with tombstones.
 */
export function chunkKey(windowStart: number, chunk: number): string {
  return `${windowStart}:${chunk}`;
}

export function parseChunkKey(key: string): { windowStart: number; chunk: number } {
  const i = key.indexOf(':');
  const windowStart = Number(key.slice(0, i));
  const chunk = Number(key.slice(i + 1));
  if (i < 0 || !Number.isSafeInteger(windowStart) || !Number.isSafeInteger(chunk)) throw new Error(`not a changelog key: ${key}`);
  return { windowStart, chunk };
}
