import assert from 'node:assert/strict';
import { DedupSet, hashImpressionId, ID_BYTES, type IdHash } from '../../server/src/aggregator/core/index.js';

/** Deterministic random 128-bit hashes (splitmix32-style), word 0 never 0 like hashImpressionId's. */
function randomHashes(n: number, seed: number): IdHash[] {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  const out: IdHash[] = [];
  for (let i = 0; i < n; i++) out.push([next() || 1, next(), next(), next()]);
  return out;
}

describe('DedupSet', () => {
  it('adds once, then reports membership', () => {
    const set = new DedupSet();
    const a = hashImpressionId('imp-a');
    const b = hashImpressionId('imp-b');
    assert.equal(set.has(a), false);
    assert.equal(set.add(a), true);
    assert.equal(set.add(a), false);
    assert.equal(set.has(a), true);
    assert.equal(set.has(b), false);
    assert.equal(set.size, 1);
  });

  it('tells apart hashes that differ in one word only', () => {
    const set = new DedupSet();
    const base: IdHash = [7, 8, 9, 10];
    set.add(base);
    for (const other of [[8, 8, 9, 10], [7, 9, 9, 10], [7, 8, 10, 10], [7, 8, 9, 11]] as IdHash[]) {
      assert.equal(set.has(other), false, other.join(','));
      assert.equal(set.add(other), true);
    }
    assert.equal(set.size, 5);
  });

  it('stores a word 0 of 0 as 1 instead of losing it as "empty"', () => {
    const set = new DedupSet();
    assert.equal(set.add([0, 1, 2, 3]), true);
    assert.equal(set.has([0, 1, 2, 3]), true);
    assert.equal(set.add([0, 1, 2, 3]), false);
    assert.equal(set.size, 1);
  });

  it('holds 200k random ids with no false positives and no misses', () => {
    const ids = randomHashes(200_000, 1);
    const others = randomHashes(200_000, 2);
    const set = new DedupSet();
    for (const h of ids) assert.equal(set.add(h), true);
    assert.equal(set.size, 200_000);
    let missing = 0;
    for (const h of ids) if (!set.has(h)) missing++;
    assert.equal(missing, 0);
    let falsePositives = 0;
    for (const h of others) if (set.has(h)) falsePositives++;
    assert.equal(falsePositives, 0);
    let readded = 0;
    for (const h of ids) if (set.add(h)) readded++;
    assert.equal(readded, 0);
  });

  it('starts small and grows by ×1.5 once load passes 0.8', () => {
    const set = new DedupSet();
    assert.equal(set.byteLength, 64 * 16);
    const ids = randomHashes(60, 3);
    for (let i = 0; i < 51; i++) set.add(ids[i]);
    assert.equal(set.byteLength, 64 * 16, '51/64 is below 0.8');
    set.add(ids[51]);
    assert.equal(set.byteLength, 96 * 16, '52/64 is above 0.8');
    for (let i = 0; i < 60; i++) assert.equal(set.has(ids[i]), i < 52, 'ids survive rehashing');
  });

  it('keeps ≤ 32 bytes per id once past the initial 64 slots, at every size up to 50k and at 1M', () => {
    const set = new DedupSet();
    const ids = randomHashes(50_000, 4);
    let worst = 0;
    for (let i = 0; i < ids.length; i++) {
      set.add(ids[i]);
      if (set.size >= 64) worst = Math.max(worst, set.byteLength / set.size);
    }
    assert.ok(worst <= 32, `worst ${worst} bytes/id`);
    assert.ok(worst > 16);
    for (const h of randomHashes(950_000, 5)) set.add(h);
    assert.equal(set.size, 1_000_000);
    assert.ok(set.byteLength / set.size <= 32, `${set.byteLength / set.size} bytes/id at 1M`);
  });

  it('round-trips ids through a changelog chunk, little-endian', () => {
    const ids = randomHashes(1000, 6);
    const chunk = DedupSet.encodeChunk(ids);
    assert.equal(chunk.length, 1000 * ID_BYTES);
    const w0 = ids[0][0];
    assert.deepEqual([...chunk.subarray(0, 4)], [w0 & 0xff, (w0 >>> 8) & 0xff, (w0 >>> 16) & 0xff, w0 >>> 24]);
    assert.deepEqual(DedupSet.decodeChunk(chunk), ids);

    const restored = new DedupSet();
    assert.equal(restored.addChunk(chunk), 1000);
    assert.equal(restored.size, 1000);
    for (const h of ids) assert.equal(restored.has(h), true);
    assert.equal(restored.addChunk(chunk), 0, 'replaying a chunk adds nothing');
    assert.ok(restored.byteLength / restored.size <= 32);
  });

  it('reads a chunk at an odd byte offset (a Kafka message buffer slice)', () => {
    const ids = randomHashes(10, 7);
    const chunk = DedupSet.encodeChunk(ids);
    const backing = new Uint8Array(chunk.length + 3);
    backing.set(chunk, 3);
    const set = new DedupSet();
    assert.equal(set.addChunk(backing.subarray(3)), 10);
    for (const h of ids) assert.equal(set.has(h), true);
  });

  it('refuses a chunk whose length is not a multiple of 16', () => {
    assert.throws(() => new DedupSet().addChunk(new Uint8Array(17)), RangeError);
    assert.throws(() => DedupSet.decodeChunk(new Uint8Array(15)), RangeError);
  });
});
