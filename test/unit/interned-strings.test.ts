import assert from 'node:assert/strict';
import { InternedStrings } from '../../server/src/impression/interned-strings.js';

describe('InternedStrings', () => {
  const at = (s: string, pad = 3) => {
    const b = Buffer.from(`${'#'.repeat(pad)}${s}${'#'.repeat(pad)}`, 'latin1');
    return { b, start: pad, end: pad + s.length };
  };

  /** What the scanner does: the remembered string, else the bytes' string remembered now. */
  const get = (strings: InternedStrings, b: Buffer, start: number, end: number) => strings.lookup(b, start, end) ?? strings.remember(b, start, end);

  it('answers the string of the bytes, remembered or not, whatever else shares its slot', () => {
    const strings = new InternedStrings();
    // Far more distinct values than slots, each asked for twice in a row and again later: hits,
    // misses and slots taken over by another value must all answer the bytes' own string.
    const values = Array.from({ length: 20_000 }, (_, i) => `cmp-${i}`);
    for (let round = 0; round < 2; round++) {
      for (const v of values) {
        const { b, start, end } = at(v, round + 1);
        assert.equal(get(strings, b, start, end), v);
        assert.equal(get(strings, b, start, end), v);
      }
    }
  });

  it('tells apart values of the same length and values that are prefixes of each other', () => {
    const strings = new InternedStrings();
    for (const v of ['DE', 'FR', 'D', 'DEU', '', 'DE']) {
      const { b, start, end } = at(v);
      assert.equal(get(strings, b, start, end), v);
    }
  });

  it('does not keep the bytes it was given: a reused buffer does not change what a later hit answers', () => {
    const strings = new InternedStrings();
    const { b, start, end } = at('campaign-7');
    assert.equal(get(strings, b, start, end), 'campaign-7');
    b.write('campaign-8', start, 'latin1');
    assert.equal(get(strings, b, start, end), 'campaign-8');
    assert.equal(get(strings, at('campaign-7').b, start, end), 'campaign-7');
  });

  it('finds what it remembered, and nothing it was not given', () => {
    const strings = new InternedStrings();
    const { b, start, end } = at('adv-3');
    assert.equal(strings.lookup(b, start, end), undefined);
    strings.remember(b, start, end);
    assert.equal(strings.lookup(b, start, end), 'adv-3');
    const other = at('adv-4');
    assert.equal(strings.lookup(other.b, other.start, other.end), undefined);
  });

  it('answers long values without remembering them', () => {
    const strings = new InternedStrings();
    const long = 'x'.repeat(200);
    const { b, start, end } = at(long);
    assert.equal(strings.remember(b, start, end), long);
    assert.equal(strings.lookup(b, start, end), undefined);
  });
});
