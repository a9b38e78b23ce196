import assert from 'node:assert/strict';
import type { CountRow, Maturity } from '../../web/src/contracts.js';
import { campaignTotals, windowBuckets } from '../../web/src/live-aggregates.js';
import {
  breakdownPath, bucketAxisLabel, bucketMsOf, bucketTitle, countPeriodRows, countsPath, includesNow, isCurrentDay,
} from '../../web/src/range-report.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const D = Date.UTC(2025, 10, 26); // 2025-11-26 00:00 UTC

function countRow(periodStart: number, campaignId: string, impressions: number, spendMicros: number | string, maturity: Maturity, span = HOUR): CountRow {
  return { periodStart, periodEnd: periodStart + span, advertiserId: 'adv-1', campaignId, impressions, spendMicros, duplicates: 1, maturity };
}

describe('web range report: API paths', () => {
  it('asks /counts for the range, the advertiser and the campaign, by hour or day', () => {
    assert.equal(countsPath({ advertiserId: 'adv-1', from: D, to: D + DAY }, 'hour'),
      `/api/v1/counts?advertiser_id=adv-1&from=${D}&to=${D + DAY}&granularity=hour`);
    assert.equal(countsPath({ advertiserId: 'adv-1', campaignId: 'cmp:1', from: D, to: D + DAY }, 'day'),
      `/api/v1/counts?advertiser_id=adv-1&campaign_id=cmp%3A1&from=${D}&to=${D + DAY}&granularity=day`);
    assert.equal(countsPath({ advertiserId: null, from: D, to: D + DAY }, 'hour'), `/api/v1/counts?from=${D}&to=${D + DAY}&granularity=hour`, 'all advertisers (admin)');
  });

  it('asks /breakdown for one dimension over the whole range', () => {
    assert.equal(breakdownPath({ advertiserId: 'adv-1', campaignId: 'cmp-1', from: D, to: D + 7 * DAY }, 'country'),
      `/api/v1/breakdown?advertiser_id=adv-1&campaign_id=cmp-1&from=${D}&to=${D + 7 * DAY}&dimension=country&granularity=total`);
  });
});

describe('web range report: /counts rows through the live aggregations', () => {
  const rows = countPeriodRows([
    countRow(D + 10 * HOUR, 'cmp-1', 5, 1_000, 'final'),
    countRow(D + 11 * HOUR, 'cmp-1', 2, '9007199254740993', 'provisional'),
    countRow(D + 11 * HOUR, 'cmp-2', 3, 7, 'live'),
  ]);

  it('an hour or a day is a window: its start, its numbers, final only when in the ledger', () => {
    assert.deepEqual(rows[0], { windowStart: D + 10 * HOUR, advertiserId: 'adv-1', campaignId: 'cmp-1', impressions: 5, spendMicros: 1_000, duplicates: 1, final: true, maturity: 'final' });
    assert.equal(rows[1].final, false);
  });

  it('per campaign over the range, spend exact, as settled as the least settled period', () => {
    const c = campaignTotals(rows, D);
    assert.deepEqual(c.map((x) => [x.campaignId, x.impressions, x.spendMicros, x.maturity]), [
      ['cmp-1', 7, 9_007_199_254_741_993n, 'provisional'],
      ['cmp-2', 3, 7n, 'live'],
    ]);
  });

  it('hour buckets over the range up to now, every hour present, none past the range', () => {
    const now = D + 11 * HOUR + 30 * 60_000;
    const buckets = windowBuckets(rows, { from: D, to: D + DAY, now, windowMs: 60_000, bucketMs: HOUR, allAdvertisers: false });
    assert.equal(buckets.length, 12, '00:00 … 11:00');
    assert.deepEqual(buckets[10].bySeries, new Map([['cmp-1', 5]]));
    assert.equal(buckets[10].final, true);
    assert.equal(buckets[11].impressions, 5);
    assert.equal(buckets[11].open, true, 'the hour the clock is in');
    const past = windowBuckets(rows, { from: D - 7 * DAY, to: D, now, windowMs: 60_000, bucketMs: DAY, allAdvertisers: false });
    assert.deepEqual(past.map((b) => b.start), Array.from({ length: 7 }, (_, i) => D - (7 - i) * DAY), 'a past range stops at its end');
    assert.ok(past.every((b) => b.impressions === 0 && !b.open));
  });
});

describe('web range report: ranges and the clock', () => {
  it('today exactly is served by the live feed; any other range is not', () => {
    const now = D + 15 * HOUR;
    assert.equal(isCurrentDay({ from: D, to: D + DAY }, now), true);
    assert.equal(isCurrentDay({ from: D - DAY, to: D + DAY }, now), false);
    assert.equal(isCurrentDay({ from: D - DAY, to: D }, now), false);
    assert.equal(isCurrentDay({ from: D, to: D + DAY }, D + DAY), false, 'after midnight it is yesterday');
  });

  it('a range that has not ended keeps moving', () => {
    assert.equal(includesNow({ from: D, to: D + DAY }, D + HOUR), true);
    assert.equal(includesNow({ from: D - DAY, to: D }, D + HOUR), false);
  });
});

describe('web range report: chart labels', () => {
  it('bucket sizes', () => {
    assert.equal(bucketMsOf('hour'), HOUR);
    assert.equal(bucketMsOf('day'), DAY);
  });

  it('labels days by date, hours by time (with the date when the chart spans days), windows by time', () => {
    assert.equal(bucketAxisLabel(D, DAY, true), '11-26');
    assert.equal(bucketAxisLabel(D + 14 * HOUR, HOUR, false), '14:00');
    assert.equal(bucketAxisLabel(D + 14 * HOUR, HOUR, true), '11-26 14:00');
    assert.equal(bucketAxisLabel(D + 14 * HOUR + 5 * 60_000, 60_000, false), '14:05');
    assert.equal(bucketAxisLabel(D + 14 * HOUR + 5 * 60_000 + 30_000, 10_000, false), '14:05:30');
  });

  it('titles a bucket with its whole span in UTC', () => {
    assert.equal(bucketTitle(D, DAY), '2025-11-26 (UTC)');
    assert.equal(bucketTitle(D + 14 * HOUR, HOUR), '2025-11-26 14:00–15:00 UTC');
    assert.equal(bucketTitle(D + 23 * HOUR, HOUR), '2025-11-26 23:00–00:00 UTC');
    assert.equal(bucketTitle(D + 14 * HOUR + 5 * 60_000, 60_000), '14:05–14:06 UTC');
    assert.equal(bucketTitle(D + 14 * HOUR + 5 * 60_000, 10_000), '14:05:00–14:05:10 UTC');
  });
});
