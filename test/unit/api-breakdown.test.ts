import assert from 'node:assert/strict';
import { breakdownResponse, breakdownSql, parseBreakdownQuery, type BreakdownQuery } from '../../server/src/api/index.js';
import { ApiError } from '../../server/src/http/index.js';
import type { Frontier } from '../../server/src/ledger/index.js';

const NOW = Date.UTC(2025, 10, 26, 12, 0, 0);
const H = 3_600_000;
const ALL = ['creative_id', 'publisher_id', 'country', 'device'] as const;

function status400(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.status, 400);
    return err.parameter;
  }
  assert.fail('expected a 400');
}

describe('GET /api/v1/breakdown', () => {
  it('takes /counts\' parameters plus a configured dimension; granularity total by default', () => {
    const q = parseBreakdownQuery({ dimension: 'country', advertiser_id: 'adv-1', from: String(NOW - H), to: String(NOW) }, NOW, ALL);
    assert.deepEqual(q, { dimension: 'country', advertiserId: 'adv-1', campaignId: null, from: NOW - H, to: NOW, granularity: 'total' });
    assert.equal(parseBreakdownQuery({ dimension: 'device', granularity: 'day' }, NOW, ALL).granularity, 'day');
  });

  it('refuses a missing, unknown, unconfigured or repeated dimension and a bad granularity, naming the parameter', () => {
    assert.equal(status400(() => parseBreakdownQuery({}, NOW, ALL)), 'dimension');
    assert.equal(status400(() => parseBreakdownQuery({ dimension: 'browser' }, NOW, ALL)), 'dimension');
    assert.equal(status400(() => parseBreakdownQuery({ dimension: 'country' }, NOW, ['device'])), 'dimension');
    assert.equal(status400(() => parseBreakdownQuery({ dimension: ['country', 'device'] }, NOW, ALL)), 'dimension');
    assert.equal(status400(() => parseBreakdownQuery({ dimension: "country' OR 1" }, NOW, ALL)), 'dimension');
    assert.equal(status400(() => parseBreakdownQuery({ dimension: 'country', granularity: 'week' }, NOW, ALL)), 'granularity');
    assert.equal(status400(() => parseBreakdownQuery({ dimension: 'country', advertiser_id: "a'b" }, NOW, ALL)), 'advertiser_id');
  });

  const q = (over: Partial<BreakdownQuery> = {}): BreakdownQuery => ({
    dimension: 'country', advertiserId: 'adv-1', campaignId: null, from: NOW - 3 * H, to: NOW, granularity: 'total', ...over,
  });
  const frontier: Frontier = { finalBefore: NOW - 2 * H, rolledBefore: null, minWatermark: NOW - 60_000 };

  it('splits the range like /counts: whole final hours from `from`, then windows', () => {
    const sql = breakdownSql('tally', q({ from: NOW - 3 * H + 500 }), frontier, 10);
    // from rounds up to the second; the final part ends at the frontier, the window part starts there.
    assert.match(sql, new RegExp(`>= ${(NOW - 3 * H + 1000) / 1000} AND intDiv\\(toUInt32\\(window_start\\), 3600\\) \\* 3600 < ${(NOW - 2 * H) / 1000}\\)`));
    assert.match(sql, new RegExp(`window_start >= toDateTime\\(${(NOW - 2 * H) / 1000}\\) AND window_start < toDateTime\\(${NOW / 1000}\\)`));
    assert.match(sql, /dimension = 'country'/);
    assert.match(sql, /advertiser_id = 'adv-1'/);
    // By window: no split, like /counts at window granularity.
    assert.doesNotMatch(breakdownSql('tally', q({ granularity: 'window' }), frontier, 10), /intDiv/);
  });

  it('answers with exact sums past 2^53, totals over every row, and each row\'s maturity', () => {
    const r = breakdownResponse(q({ granularity: 'hour' }), [
      { period_s: (NOW - 3 * H) / 1000, value: 'DE', impressions: 3, spend_micros: '9007199254740993', end_s: (NOW - 3 * H + 60_000) / 1000 },
      { period_s: (NOW - H) / 1000, value: 'FR', impressions: '2', spend_micros: 7, end_s: (NOW - H + 60_000) / 1000 },
    ], { windowMs: 60_000, allowedLatenessMs: 30_000, frontier });
    assert.deepEqual(r.rows.map((x) => [x.periodStart, x.periodEnd, x.value, x.impressions, x.spendMicros, x.maturity]), [
      [NOW - 3 * H, NOW - 2 * H, 'DE', 3, '9007199254740993', 'final'],
      [NOW - H, NOW, 'FR', 2, 7, 'live'],
    ]);
    assert.deepEqual(r.totals, { impressions: 5, spendMicros: '9007199254741000', maturity: 'live' });
  });
});
