/**
 * Per-client memory that a flood cannot grow without bound: a Map used in insertion order, where
 * setting a key makes it the newest and the oldest entries are dropped once it is full.
 */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  while (map.size >= max) {
    const oldest = map.keys().next();
    if (oldest.done) break;
    map.delete(oldest.value);
  }
  map.set(key, value);
}
