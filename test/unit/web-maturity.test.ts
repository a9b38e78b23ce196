import assert from 'node:assert/strict';
import type { Maturity } from '../../web/src/contracts.js';
import { leastMature, MATURITY_INFO } from '../../web/src/maturity.js';

const ALL: Maturity[] = ['live', 'provisional', 'final'];

describe('web maturity', () => {
  it('the least settled of two: live < provisional < final, whatever the order', () => {
    for (const [i, a] of ALL.entries()) {
      for (const [j, b] of ALL.entries()) {
        const expected = ALL[Math.min(i, j)];
        assert.equal(leastMature(a, b), expected, `${a}, ${b}`);
      }
    }
  });

  it('a total is as settled as its least settled part', () => {
    assert.equal((['final', 'provisional', 'final'] as Maturity[]).reduce(leastMature), 'provisional');
    assert.equal((['final', 'final'] as Maturity[]).reduce(leastMature), 'final');
    assert.equal((['final', 'live', 'provisional'] as Maturity[]).reduce(leastMature), 'live');
  });

  it('labels each maturity by its name, with a mark of its own and an explanation', () => {
    assert.deepEqual(Object.keys(MATURITY_INFO).sort(), [...ALL].sort());
    for (const m of ALL) {
      assert.equal(MATURITY_INFO[m].label, m);
      assert.match(MATURITY_INFO[m].title, new RegExp(`^${m}:`, 'i'));
    }
    assert.equal(new Set(ALL.map((m) => MATURITY_INFO[m].mark)).size, ALL.length, 'marks tell the maturities apart');
  });
});
