import assert from 'node:assert/strict';
import {
  breakdownLines, DEFAULT_SORT, dimensionLabel, formatShare, linesMatchTotals, nextSort, shareBasisPoints, sortLines, sumLines,
  type BreakdownLine,
} from '../../web/src/breakdown.js';
import type { BreakdownRow, Maturity } from '../../web/src/contracts.js';

const FROM = Date.UTC(2025, 10, 20);
const TO = Date.UTC(2025, 10, 27);

function row(value: string, impressions: number, spendMicros: number | string, maturity: Maturity = 'final', periodStart = FROM): BreakdownRow {
  return { periodStart, periodEnd: periodStart === FROM ? TO : periodStart + 3_600_000, value, impressions, spendMicros, maturity };
}

const line = (value: string, impressions: number, spendMicros: bigint, maturity: Maturity = 'final'): BreakdownLine => ({ value, impressions, spendMicros, maturity });

describe('web breakdown: lines of a dimension', () => {
  it('one line per value, spend exact beyond 2^53, most impressions first', () => {
    const lines = breakdownLines([row('DE', 3, 1_500_000), row('unknown', 7, '9007199254740993'), row('FR', 3, 2)]);
    assert.deepEqual(lines, [line('unknown', 7, 9_007_199_254_740_993n), line('DE', 3, 1_500_000n), line('FR', 3, 2n)]);
  });

  it('sums the periods of a finer granularity per value; a line is as settled as its least settled row', () => {
    const hour = Date.UTC(2025, 10, 26, 14);
    const lines = breakdownLines([row('DE', 2, 10, 'final', hour), row('DE', 5, 20, 'live', hour + 3_600_000), row('FR', 1, 1, 'provisional', hour)]);
    assert.deepEqual(lines, [line('DE', 7, 30n, 'live'), line('FR', 1, 1n, 'provisional')]);
  });

  it('adds up to the totals to the impression and the micro, or says it does not', () => {
    const lines = breakdownLines([row('DE', 3, 1_500_001), row('FR', 4, '9007199254740993')]);
    assert.deepEqual(sumLines(lines), { impressions: 7, spendMicros: 9_007_199_256_240_994n });
    assert.equal(linesMatchTotals(lines, { impressions: 7, spendMicros: '9007199256240994' }), true);
    assert.equal(linesMatchTotals(lines, { impressions: 7, spendMicros: '9007199256240995' }), false, 'one micro off');
    assert.equal(linesMatchTotals(lines, { impressions: 8, spendMicros: '9007199256240994' }), false);
    assert.equal(linesMatchTotals([], { impressions: 0, spendMicros: 0 }), true);
  });

  it('names the dimensions in words, and an unknown one by its name', () => {
    assert.deepEqual(['creative_id', 'publisher_id', 'country', 'device', 'browser'].map(dimensionLabel), ['Creative', 'Publisher', 'Country', 'Device', 'browser']);
  });
});

describe('web breakdown: shares', () => {
  it('in hundredths of a percent, rounded half up, by integer arithmetic', () => {
    assert.equal(shareBasisPoints(1, 3), 3333);
    assert.equal(shareBasisPoints(2, 3), 6667);
    assert.equal(shareBasisPoints(1, 8), 1250);
    assert.equal(shareBasisPoints(1, 20_000), 1, 'half of 0.01 % rounds up');
    assert.equal(shareBasisPoints(1, 20_001), 0, 'just below half rounds down');
    assert.equal(shareBasisPoints(5, 5), 10_000);
    assert.equal(shareBasisPoints(Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER), 10_000);
    assert.equal(shareBasisPoints(0, 0), null);
  });

  it('as a percentage with two decimals', () => {
    assert.equal(formatShare(1, 3), '33.33');
    assert.equal(formatShare(1, 8), '12.50');
    assert.equal(formatShare(1, 1_000_000), '0.00');
    assert.equal(formatShare(7, 7), '100.00');
    assert.equal(formatShare(0, 0), '');
  });
});

describe('web breakdown: sorting', () => {
  const lines = [
    line('mobile', 5, 900n, 'live'), line('desktop', 9, 100n, 'final'), line('tablet', 5, 2_000n, 'provisional'), line('unknown', 1, 5n, 'final'),
  ];
  const order = (column: Parameters<typeof nextSort>[1], descending: boolean) => sortLines(lines, { column, descending }).map((l) => l.value);

  it('by each column, both ways; ties by value A→Z whichever the direction', () => {
    assert.deepEqual(order('impressions', true), ['desktop', 'mobile', 'tablet', 'unknown']);
    assert.deepEqual(order('impressions', false), ['unknown', 'mobile', 'tablet', 'desktop']);
    assert.deepEqual(order('share', true), order('impressions', true), 'a share orders as its impressions');
    assert.deepEqual(order('spend', true), ['tablet', 'mobile', 'desktop', 'unknown']);
    assert.deepEqual(order('spend', false), ['unknown', 'desktop', 'mobile', 'tablet']);
    assert.deepEqual(order('value', false), ['desktop', 'mobile', 'tablet', 'unknown']);
    assert.deepEqual(order('value', true), ['unknown', 'tablet', 'mobile', 'desktop']);
    assert.deepEqual(order('maturity', false), ['mobile', 'tablet', 'desktop', 'unknown'], 'least settled first');
    assert.deepEqual(order('maturity', true), ['desktop', 'unknown', 'tablet', 'mobile']);
  });

  it('compares spend as exact integers beyond 2^53', () => {
    const big = [line('a', 1, 9_007_199_254_740_993n), line('b', 1, 9_007_199_254_740_992n)];
    assert.deepEqual(sortLines(big, { column: 'spend', descending: false }).map((l) => l.value), ['b', 'a']);
  });

  it('does not reorder the lines it was given', () => {
    const before = lines.map((l) => l.value);
    sortLines(lines, { column: 'value', descending: true });
    assert.deepEqual(lines.map((l) => l.value), before);
  });

  it('a header click flips its own column, starts another A→Z for values and largest first for numbers', () => {
    assert.deepEqual(DEFAULT_SORT, { column: 'impressions', descending: true });
    assert.deepEqual(nextSort(DEFAULT_SORT, 'impressions'), { column: 'impressions', descending: false });
    assert.deepEqual(nextSort(DEFAULT_SORT, 'value'), { column: 'value', descending: false });
    assert.deepEqual(nextSort(DEFAULT_SORT, 'spend'), { column: 'spend', descending: true });
    assert.deepEqual(nextSort({ column: 'value', descending: false }, 'value'), { column: 'value', descending: true });
  });
});
