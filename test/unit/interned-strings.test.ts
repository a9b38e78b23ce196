import assert from 'node:assert/strict';
import { InternedStrings } from '../../server/src/impression/interned-strings.js';

describe('InternedStrings', () => {
  const at = (s: string, pad = 3) => {
    const b = Buffer.from(`${'#'.repeat(pad)}${s}${'#'.repeat(pad)}`, 'latin1');
    return { b, start: pad, end: pad + s.length };
  };

  it('answers the string of the bytes, from the cache or not, whatever else shares its slot', () => {
    const strings = new InternedStrings();
    // Far more distinct values than slots, each asked for twice in a row and again later: hits,
    // misses and slots taken over by another value must all answer the bytes' own string.
    const values = Array.from({ length: 20_000 }, (_, i) => `cmp-${i}`);
    for (let round = 0; round < 2; round++) {
      for (const v of values) {
        const { b, start, end } = at(v, round + 1);
        assert.equal(strings.get(b, start, end), v);
        assert.equal(strings.get(b, start, end), v);
      }
    }
  });

  it('tells apart values of the same length and values that are prefixes of each other', () => {
    const strings = new InternedStrings();
    for (const v of ['DE', 'FR', 'D', 'DEU', '', 'DE']) {
      const { b, start, end } = at(v);
      assert.equal(strings.get(b, start, end), v);
    }
  });

  it('does not keep the bytes it was given: a reused buffer does not change what a later hit answers', () => {
    const strings = new InternedStrings();
    const { b, start, end } = at('campaign-7');
    assert.equal(strings.get(b, start, end), 'campaign-7');
    b.write('campaign-8', start, 'latin1');
    assert.equal(strings.get(b, start, end), 'campaign-8');
    assert.equal(strings.get(at('campaign-7').b, start, end), 'campaign-7');
  });

  it('answers long values without caching them', () => {
    const strings = new InternedStrings();
    const long = 'x'.repeat(200);
    const { b, start, end } = at(long);
    assert.equal(strings.get(b, start, end), long);
    assert.equal(strings.get(b, start, end), long);
  });
});
