import assert from 'node:assert/strict';
import { hashImpressionId } from '../../server/src/aggregator/core/index.js';

// From the reference C implementation (smhasher MurmurHash3_x86_128, seed 0), output words h1..h4.
const REFERENCE: [string, [number, number, number, number]][] = [
  ['a', [2811532092, 1431744539, 1431744539, 1431744539]],
  ['abc', [1976420049, 2729445029, 2729445029, 2729445029]],
  ['hello', [723797152, 3683770103, 2598056374, 2598056374]],
  ['imp:1.2_3-x', [3545816414, 2206341482, 2155046171, 834510012]],
  ['0123456789abcde', [1014416493, 1292376256, 2916365274, 2810606586]],
  ['0123456789abcdef', [4219290633, 917426954, 1219304859, 1462451197]],
  ['0123456789abcdef0', [529152085, 1620184070, 3038261020, 1905003420]],
  ['5f0c2b9e-1234-4c1a-9e2f-0123456789ab', [602195571, 582357741, 2755258221, 1676139370]],
  ['The quick brown fox jumps over the lazy dog', [789939139, 3975031911, 1568405100, 3857259820]],
  ['héllo € 😀', [2957501819, 2478771943, 4180958231, 1391063680]],
];

/** Every tail length 1..15, one and two full blocks: prefixes of ALPHABET, lengths 1..33. */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGH';
const BY_LENGTH: [number, number, number, number][] = [
  [2811532092, 1431744539, 1431744539, 1431744539],
  [360993247, 633221136, 633221136, 633221136],
  [1976420049, 2729445029, 2729445029, 2729445029],
  [2528562346, 1169147438, 1169147438, 1169147438],
  [3309317883, 1562691004, 1517420919, 1517420919],
  [3783047434, 2712610593, 2847858681, 2847858681],
  [2427797977, 159791838, 1249339688, 1249339688],
  [2935230774, 2914063495, 4201414802, 4201414802],
  [2902821916, 570841455, 349338896, 3717480828],
  [4124651175, 2587332622, 3348277802, 1764749695],
  [2697513437, 3391033630, 2197745965, 3177092951],
  [1938097150, 4102169792, 668262317, 3532449107],
  [3241845269, 3685655020, 4095489382, 3643596400],
  [1978405262, 1616715735, 2490320372, 4057237837],
  [4000128361, 1243272622, 2228098135, 2913427880],
  [2681370151, 2428047958, 3838741281, 3516119621],
  [71673043, 1683053679, 3647855658, 487655325],
  [2694010026, 2518493658, 678534762, 3644938328],
  [1332353832, 3216590236, 1350088643, 539758483],
  [1176843289, 3060605352, 2662626088, 533421396],
  [234078374, 545682284, 223984103, 2576156718],
  [3642872999, 3940310025, 2847620153, 2216899592],
  [1463658947, 1229521195, 2125298481, 2400520680],
  [3615564672, 931354233, 1232205969, 21524018],
  [2769929738, 1964319536, 1255637082, 1118370526],
  [1043596819, 1718562662, 402019950, 1155743020],
  [2529403503, 2045241729, 1178645353, 314831788],
  [3283518770, 1950034474, 3081470415, 4036806628],
  [1223527578, 1784425038, 1994921016, 3582003943],
  [4213871183, 3748341620, 2760545008, 3868646115],
  [606770141, 3936945127, 3334713469, 349683276],
  [3884867662, 2866335897, 1023773155, 406554308],
  [77881434, 3969451755, 3670813643, 179978444],
];

describe('hashImpressionId', () => {
  for (const [id, words] of REFERENCE) {
    it(`matches MurmurHash3_x86_128 for ${JSON.stringify(id)}`, () => {
      assert.deepEqual(hashImpressionId(id), words);
    });
  }

  it('matches the reference for every length 1..33 (all tail cases)', () => {
    for (let n = 1; n <= 33; n++) assert.deepEqual(hashImpressionId(ALPHABET.slice(0, n)), BY_LENGTH[n - 1], `length ${n}`);
  });

  it('flips a bit of word 0 where the hash would be all zero (the empty string)', () => {
    assert.deepEqual(hashImpressionId(''), [1, 0, 0, 0]);
  });

  it('returns unsigned 32-bit words with word 0 never 0', () => {
    for (let i = 0; i < 10_000; i++) {
      const h = hashImpressionId(`id-${i}`);
      assert.equal(h.length, 4);
      for (const w of h) assert.ok(Number.isInteger(w) && w >= 0 && w <= 0xffffffff);
      assert.notEqual(h[0], 0);
    }
  });

  it('is stable across calls (the scratch buffer leaks nothing between ids)', () => {
    const long = 'L'.repeat(2000);
    const before = hashImpressionId('abc');
    hashImpressionId(long);
    hashImpressionId('é'.repeat(700));
    assert.deepEqual(hashImpressionId('abc'), before);
    assert.deepEqual(hashImpressionId(long), hashImpressionId(long));
  });

  it('tells apart ids that differ in one character or only in length', () => {
    const seen = new Set<string>();
    for (const id of ['a', 'a\u0000', 'b', 'ab', 'ba', 'x'.repeat(16), 'x'.repeat(17), 'x'.repeat(15)]) {
      seen.add(hashImpressionId(id).join(','));
    }
    assert.equal(seen.size, 8);
  });

  it('hashes a lone surrogate like its UTF-8 replacement (as Buffer.from would encode it)', () => {
    assert.deepEqual(hashImpressionId('a\ud800b'), hashImpressionId('a\ufffdb'));
  });
});
