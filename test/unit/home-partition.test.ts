import assert from 'node:assert/strict';
import { homePartition, murmur2 } from '../../server/src/impression/index.js';

// Kafka's own vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2).
const KAFKA_VECTORS: [string, number][] = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107],
];

describe('murmur2 / homePartition', () => {
  for (const [input, expected] of KAFKA_VECTORS) {
    it(`murmur2("${input}") = ${expected}, like Java's Utils.murmur2`, () => {
      assert.equal(murmur2(Buffer.from(input, 'utf8')), expected);
    });
  }

  it('returns signed 32-bit integers', () => {
    for (let i = 0; i < 1000; i++) {
      const h = murmur2(Buffer.from(`id-${i}`));
      assert.ok(Number.isInteger(h) && h >= -(2 ** 31) && h < 2 ** 31);
    }
  });

  it('homePartition = toPositive(murmur2(utf8(id))) % partitions', () => {
    for (const [input, hash] of KAFKA_VECTORS) {
      for (const partitions of [1, 3, 12, 100]) {
        assert.equal(homePartition(input, partitions), (hash & 0x7fffffff) % partitions);
      }
    }
    assert.equal(homePartition('21', 12), 0); // 1173551340 % 12
    assert.equal(homePartition('foobar', 12), 6);
  });

  it('hashes the UTF-8 bytes, also beyond ASCII and beyond the scratch buffer size', () => {
    for (const id of ['héllo € 😀', 'x'.repeat(5000), `${'é'.repeat(300)}z`]) {
      assert.equal(homePartition(id, 1000), (murmur2(Buffer.from(id, 'utf8')) & 0x7fffffff) % 1000);
    }
  });

  it('spreads ids over partitions', () => {
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 80_000; i++) counts[homePartition(`imp-${i}`, 8)]++;
    for (const c of counts) assert.ok(c > 9000 && c < 11000, `uneven: ${counts.join(',')}`);
  });

  it('refuses a non-positive partition count', () => {
    assert.throws(() => homePartition('a', 0), RangeError);
    assert.throws(() => homePartition('a', 1.5), RangeError);
  });
});
