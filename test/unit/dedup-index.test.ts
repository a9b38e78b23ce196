import assert from 'node:assert/strict';
import { decodeChunk, DedupIndex, encodeChunk, hashImpressionId, ID_BYTES, type IdHash } from '../../server/src/aggregator/core/index.js';

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

describe('DedupIndex', () => {
  it('adds an id once with its tag, then returns that tag whatever tag a copy brings', () => {
    const index = new DedupIndex();
    const a = hashImpressionId('imp-a');
    assert.equal(index.tagOf(a), -1);
    assert.equal(index.addOrGet(a, 100), -1, 'added');
    assert.equal(index.addOrGet(a, 101), 100, 'a copy in another window finds the first one');
    assert.equal(index.tagOf(a), 100);
    assert.equal(index.tagOf(hashImpressionId('imp-b')), -1);
  });

  it('tells apart hashes that differ in one of the three stored words', () => {
    const index = new DedupIndex();
    index.addOrGet([7, 8, 9, 10], 1);
    for (const other of [[8, 8, 9, 10], [7, 9, 9, 10], [7, 8, 10, 10]] as IdHash[]) {
      assert.equal(index.tagOf(other), -1, other.join(','));
      assert.equal(index.addOrGet(other, 2), -1);
    }
    assert.equal(index.tagOf([7, 8, 9, 99]), 1, 'word 3 is not stored: 96 bits identify an id');
  });

  it('stores a word 0 of 0 as 1 instead of losing it as "empty"', () => {
    const index = new DedupIndex();
    assert.equal(index.addOrGet([0, 1, 2, 3], 5), -1);
    assert.equal(index.tagOf([0, 1, 2, 3]), 5);
  });

  it('forgets ids below a retired tag, and a copy of a forgotten id is new again', () => {
    const index = new DedupIndex();
    const old = hashImpressionId('old');
    const kept = hashImpressionId('kept');
    index.addOrGet(old, 10);
    index.addOrGet(kept, 11);
    index.retireBelow(11);
    assert.equal(index.tagOf(old), -1);
    assert.equal(index.tagOf(kept), 11);
    assert.equal(index.addOrGet(old, 12), -1, 'added again, under the new tag');
    assert.equal(index.tagOf(old), 12);
    index.retireBelow(5);
    assert.equal(index.tagOf(kept), 11, 'the floor never goes back');
  });

  it('holds 200k random ids with no false positives and no misses', () => {
    const ids = randomHashes(200_000, 1);
    const others = randomHashes(200_000, 2);
    const index = new DedupIndex();
    ids.forEach((h, i) => assert.equal(index.addOrGet(h, i % 7), -1));
    let wrong = 0;
    ids.forEach((h, i) => { if (index.tagOf(h) !== i % 7) wrong++; });
    assert.equal(wrong, 0);
    let falsePositives = 0;
    for (const h of others) if (index.tagOf(h) !== -1) falsePositives++;
    assert.equal(falsePositives, 0);
  });

  it('keeps 20–32 bytes per id held as it grows to 1M ids', () => {
    const index = new DedupIndex();
    let i = 0;
    for (const h of randomHashes(1_000_000, 4)) {
      index.addOrGet(h, 1);
      if (++i >= 50_000 && i % 10_000 === 0) {
        const perId = index.byteLength / i;
        assert.ok(perId >= 16 / 0.8 - 0.5 && perId <= 32, `${perId} bytes/id at ${i} ids`);
      }
    }
  });

  it('in a sliding horizon (ids in, old windows retired) memory follows the ids held, not the ids ever seen', () => {
    const index = new DedupIndex();
    const perWindow = 20_000;
    const heldWindows = 10;
    const ids = randomHashes(perWindow * 100, 8);
    let maxBytes = 0;
    for (let w = 0; w < 100; w++) {
      index.retireBelow(w - heldWindows + 1);
      for (let k = 0; k < perWindow; k++) assert.equal(index.addOrGet(ids[w * perWindow + k], w), -1);
      maxBytes = Math.max(maxBytes, index.byteLength);
    }
    const held = perWindow * heldWindows;
    assert.ok(maxBytes / held <= 40, `${maxBytes / held} bytes per id held at most (2M ids seen)`);
    // Every id of the held windows is found, every older one is forgotten.
    for (let w = 90; w < 100; w++) assert.equal(index.tagOf(ids[w * perWindow + 3]), w);
    for (let w = 0; w < 90; w++) assert.equal(index.tagOf(ids[w * perWindow + 3]), -1);
  });

  it('restores ids from a changelog chunk under its window tag; replaying a chunk adds nothing', () => {
    const ids = randomHashes(1000, 6);
    const chunk = encodeChunk(ids);
    assert.equal(chunk.length, 1000 * ID_BYTES);
    const w0 = ids[0][0];
    assert.deepEqual([...chunk.subarray(0, 4)], [w0 & 0xff, (w0 >>> 8) & 0xff, (w0 >>> 16) & 0xff, w0 >>> 24]);
    assert.deepEqual(decodeChunk(chunk), ids);
    const index = new DedupIndex();
    assert.equal(index.addChunk(chunk, 42), 1000);
    for (const h of ids) assert.equal(index.tagOf(h), 42);
    assert.equal(index.addChunk(chunk, 43), 0);
    assert.equal(index.tagOf(ids[0]), 42);
  });

  it('reads a chunk at an odd byte offset (a Kafka message buffer slice) and refuses a torn one', () => {
    const ids = randomHashes(10, 7);
    const chunk = encodeChunk(ids);
    const backing = new Uint8Array(chunk.length + 3);
    backing.set(chunk, 3);
    const index = new DedupIndex();
    assert.equal(index.addChunk(backing.subarray(3), 1), 10);
    for (const h of ids) assert.equal(index.tagOf(h), 1);
    assert.throws(() => index.addChunk(new Uint8Array(17), 1), RangeError);
    assert.throws(() => decodeChunk(new Uint8Array(15)), RangeError);
  });
});
