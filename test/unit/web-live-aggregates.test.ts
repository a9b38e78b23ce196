import assert from 'node:assert/strict';
import type { LiveWindowRow, Maturity } from '../../web/src/contracts.js';
import {
  campaignTotals, chartBucketMs, lastHourStart, seriesKey, totalsBetween, utcDayStart, windowBuckets, windowStartOf,
} from '../../web/src/live-aggregates.js';

const MIN = 60_000;
const H = Date.UTC(2025, 10, 26, 14); // 2025-11-26 14:00 UTC

function row(windowStart: number, advertiserId: string, campaignId: string, impressions: number, spendMicros: number | string,
  opts: { duplicates?: number; final?: boolean; maturity?: Maturity } = {}): LiveWindowRow {
  return {
    windowStart, windowEnd: windowStart + MIN, advertiserId, campaignId, impressions, spendMicros,
    duplicates: opts.duplicates ?? 0, final: opts.final ?? true, maturity: opts.maturity ?? 'final',
  };
}

describe('web live aggregates: time ranges', () => {
  it('finds the UTC day and the window a moment falls in', () => {
    assert.equal(utcDayStart(H + 5 * MIN + 30_000), Date.UTC(2025, 10, 26));
    assert.equal(utcDayStart(Date.UTC(2025, 10, 26)), Date.UTC(2025, 10, 26));
    assert.equal(windowStartOf(H + 5 * MIN + 30_000, MIN), H + 5 * MIN);
    assert.equal(windowStartOf(H + 59_999, 10_000), H + 50_000);
  });

  it('"the last hour" is the 60 windows up to the open one', () => {
    const now = H + 5 * MIN + 30_000;
    const from = lastHourStart(now, MIN);
    assert.equal(from, H - 54 * MIN);
    assert.equal((windowStartOf(now, MIN) - from) / MIN + 1, 60);
  });

  it('chart buckets are windows, or a multiple of them so that an hour has at most 120 bars', () => {
    assert.equal(chartBucketMs(MIN), MIN);
    assert.equal(chartBucketMs(10_000), 30_000);
    assert.equal(chartBucketMs(1000), 30_000);
    assert.equal(chartBucketMs(3_600_000), 3_600_000);
  });
});

describe('web live aggregates: totals', () => {
  const rows = [
    row(H - MIN, 'adv-1', 'c-1', 1, 100, { duplicates: 1 }),
    row(H, 'adv-1', 'c-1', 2, 200, { duplicates: 2 }),
    row(H + MIN, 'adv-1', 'c-2', 3, 300),
    row(H + 2 * MIN, 'adv-2', 'c-1', 4, 400, { duplicates: 5 }),
  ];

  it('sums the windows starting in [from, to)', () => {
    assert.deepEqual(totalsBetween(rows, H), { impressions: 9, spendMicros: 900n, duplicates: 7 });
    assert.deepEqual(totalsBetween(rows, H, H + 2 * MIN), { impressions: 5, spendMicros: 500n, duplicates: 2 });
    assert.deepEqual(totalsBetween(rows, H + 3 * MIN), { impressions: 0, spendMicros: 0n, duplicates: 0 });
  });

  it('sums spend as bigint, exact beyond 2^53 (spend past 2^53 arrives as a string of digits)', () => {
    const big = [row(H, 'a', 'c', 1, '9007199254740993'), row(H + MIN, 'a', 'c', 1, 9_007_199_254_740_991)];
    assert.equal(totalsBetween(big, H).spendMicros, 18_014_398_509_481_984n);
  });

  it('per campaign: totals of the range, the newest window, the least settled maturity; most impressions first', () => {
    const table = campaignTotals([
      ...rows,
      row(H + 3 * MIN, 'adv-1', 'c-1', 5, 500, { maturity: 'live', final: false }),
      row(H + 4 * MIN, 'adv-1', 'c-2', 1, 10, { maturity: 'provisional' }),
    ], H);
    assert.deepEqual(table, [
      { advertiserId: 'adv-1', campaignId: 'c-1', impressions: 7, spendMicros: 700n, duplicates: 2, lastWindow: H + 3 * MIN, maturity: 'live' },
      { advertiserId: 'adv-1', campaignId: 'c-2', impressions: 4, spendMicros: 310n, duplicates: 0, lastWindow: H + 4 * MIN, maturity: 'provisional' },
      { advertiserId: 'adv-2', campaignId: 'c-1', impressions: 4, spendMicros: 400n, duplicates: 5, lastWindow: H + 2 * MIN, maturity: 'final' },
    ]);
  });

  it('names chart series by campaign, prefixed by the advertiser in the all-advertisers view', () => {
    assert.equal(seriesKey({ advertiserId: 'adv-1', campaignId: 'c-1' }, false), 'c-1');
    assert.equal(seriesKey({ advertiserId: 'adv-1', campaignId: 'c-1' }, true), 'adv-1 / c-1');
  });
});

describe('web live aggregates: chart buckets', () => {
  const now = H + 5 * MIN + 30_000; // the open window starts at H + 5 min
  const buckets = windowBuckets([
    row(H - MIN, 'adv-1', 'c-1', 100, 1), // before the range
    row(H, 'adv-1', 'c-1', 1, 10),
    row(H + MIN, 'adv-2', 'c-1', 2, 20),
    row(H + 2 * MIN, 'adv-1', 'c-1', 3, 30),
    row(H + 3 * MIN, 'adv-1', 'c-2', 4, 40, { final: false, maturity: 'live' }),
    row(H + 4 * MIN, 'adv-1', 'c-1', 5, 50),
    row(H + 10 * MIN, 'adv-1', 'c-1', 100, 1), // after now: no bucket
  ], { from: H, now, windowMs: MIN, bucketMs: 2 * MIN, allAdvertisers: true });

  it('covers [from, now] without gaps, one bucket per bucketMs', () => {
    assert.deepEqual(buckets.map((b) => [b.start, b.end]), [[H, H + 2 * MIN], [H + 2 * MIN, H + 4 * MIN], [H + 4 * MIN, H + 6 * MIN]]);
  });

  it('sums impressions and spend per bucket and per series; rows outside the range are left out', () => {
    assert.deepEqual(buckets.map((b) => b.impressions), [3, 7, 5]);
    assert.deepEqual(buckets.map((b) => b.spendMicros), [30n, 70n, 50n]);
    assert.deepEqual([...buckets[0].bySeries], [['adv-1 / c-1', 1], ['adv-2 / c-1', 2]]);
    assert.deepEqual([...buckets[1].bySeries], [['adv-1 / c-1', 3], ['adv-1 / c-2', 4]]);
  });

  it('a bucket is final when all its windows are and it does not hold the open window', () => {
    assert.deepEqual(buckets.map((b) => b.open), [false, false, true]);
    assert.deepEqual(buckets.map((b) => b.final), [true, false, false]);
  });

  it('keeps empty buckets (an empty range still has its time axis)', () => {
    const empty = windowBuckets([], { from: H, now: H + 3 * MIN, windowMs: MIN, bucketMs: MIN, allAdvertisers: false });
    assert.equal(empty.length, 4);
    assert.ok(empty.every((b) => b.impressions === 0 && b.spendMicros === 0n && b.bySeries.size === 0));
    assert.deepEqual(empty.map((b) => b.open), [false, false, false, true]);
  });
});
