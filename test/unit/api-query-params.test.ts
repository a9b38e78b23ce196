import assert from 'node:assert/strict';
import {
  countsResponse, countsSql, exactNumber, MAX_RANGE_MS, parseAdvertiserFilter, parseCountsQuery, routeLabel,
  campaignsSql, advertisersSql, type CountsQuery,
} from '../../server/src/api/index.js';
import { ApiError, parseTimeParam } from '../../server/src/http/index.js';

const NOW = Date.UTC(2025, 10, 26, 12, 0, 0);

/** The 400 ApiError a parse throws, with its parameter. */
function badParam(fn: () => unknown): { parameter: string | undefined; message: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ApiError, `expected an ApiError, got ${String(err)}`);
    assert.equal(err.status, 400);
    return { parameter: err.parameter, message: err.message };
  }
  assert.fail('expected a 400');
}

describe('API query parameters', () => {
  describe('parseTimeParam', () => {
    it('takes epoch milliseconds and ISO-8601 with a zone', () => {
      assert.equal(parseTimeParam('1764150000123'), 1764150000123);
      assert.equal(parseTimeParam('0'), 0);
      assert.equal(parseTimeParam('2025-11-26T10:00:00Z'), Date.UTC(2025, 10, 26, 10));
      assert.equal(parseTimeParam('2025-11-26T10:00Z'), Date.UTC(2025, 10, 26, 10));
      assert.equal(parseTimeParam('2025-11-26T10:00:00.5Z'), Date.UTC(2025, 10, 26, 10, 0, 0, 500));
      assert.equal(parseTimeParam('2025-11-26T12:00:00+02:00'), Date.UTC(2025, 10, 26, 10));
      assert.equal(parseTimeParam('2025-11-26T08:30:00-01:30'), Date.UTC(2025, 10, 26, 10));
      assert.equal(parseTimeParam('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
    });

    it('refuses zoneless, impossible, negative, fractional, exponent and out-of-range times', () => {
      for (const bad of [
        '', ' ', '2025-11-26T10:00:00', '2025-11-26', '2025-02-29T00:00:00Z', '2025-02-30T00:00:00Z', '2025-11-26T24:00:00Z',
        '2025-13-01T00:00:00Z', '2025-11-26T10:00:60Z', '2025-11-26T10:00:00+24:00', '-5', '1.5', '1e12', '0x10', ' 1000', '1000 ',
        '99999999999999', '4294967296000', '1969-12-31T23:59:59Z', '2025-11-26T10:00:00z', 'yesterday', "1' OR '1'='1", '1\u0000',
      ]) {
        assert.equal(parseTimeParam(bad), undefined, JSON.stringify(bad));
      }
    });
  });

  describe('parseCountsQuery', () => {
    it('defaults to the last 24 h, hourly, every advertiser', () => {
      assert.deepEqual(parseCountsQuery({}, NOW), {
        advertiserId: null, campaignId: null, from: NOW - 86_400_000, to: NOW, granularity: 'hour',
      });
    });

    it('one bound given: the other is 24 h away', () => {
      assert.deepEqual(parseCountsQuery({ from: '1000' }, NOW), {
        advertiserId: null, campaignId: null, from: 1000, to: 1000 + 86_400_000, granularity: 'hour',
      });
      const q = parseCountsQuery({ to: '2025-11-26T00:00:00Z' }, NOW);
      assert.equal(q.to - q.from, 86_400_000);
    });

    it('keeps ids exactly as given and ignores unknown parameters', () => {
      const q = parseCountsQuery({ advertiser_id: 'ADV-01', campaign_id: 'c:1.x_y-z', granularity: 'window', from: '1000', to: '2000', utm: ['a', 'b'], x: { y: '1' } }, NOW);
      assert.deepEqual(q, { advertiserId: 'ADV-01', campaignId: 'c:1.x_y-z', from: 1000, to: 2000, granularity: 'window' });
      assert.equal(parseCountsQuery({ advertiser_id: 'a'.repeat(128) }, NOW).advertiserId, 'a'.repeat(128));
    });

    it('names the bad parameter', () => {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ advertiser_id: '' }, 'advertiser_id'],
        [{ advertiser_id: ' adv-1' }, 'advertiser_id'],
        [{ advertiser_id: 'adv-1 ' }, 'advertiser_id'],
        [{ advertiser_id: "adv'1" }, 'advertiser_id'],
        [{ advertiser_id: "x' OR 1=1 --" }, 'advertiser_id'],
        [{ advertiser_id: 'x/*c*/' }, 'advertiser_id'],
        [{ advertiser_id: 'x\u0000' }, 'advertiser_id'],
        [{ advertiser_id: 'x\\' }, 'advertiser_id'],
        [{ advertiser_id: 'é' }, 'advertiser_id'],
        [{ advertiser_id: 'a'.repeat(129) }, 'advertiser_id'],
        [{ advertiser_id: ['a', 'b'] }, 'advertiser_id'],
        [{ campaign_id: 'c;DROP TABLE x' }, 'campaign_id'],
        [{ from: 'yesterday' }, 'from'],
        [{ to: '2025-11-26T10:00:00' }, 'to'],
        [{ from: ['1', '2'] }, 'from'],
        [{ granularity: 'minute' }, 'granularity'],
        [{ granularity: 'HOUR' }, 'granularity'],
        [{ granularity: '' }, 'granularity'],
      ];
      for (const [query, parameter] of cases) {
        assert.equal(badParam(() => parseCountsQuery(query, NOW)).parameter, parameter, JSON.stringify(query));
      }
    });

    it('from must be before to, and the range at most 93 days', () => {
      assert.equal(badParam(() => parseCountsQuery({ from: '2000', to: '1000' }, NOW)).parameter, 'from');
      assert.equal(badParam(() => parseCountsQuery({ from: '1000', to: '1000' }, NOW)).parameter, 'from');
      assert.equal(badParam(() => parseCountsQuery({ from: '0', to: String(MAX_RANGE_MS + 1) }, NOW)).parameter, 'to');
      assert.equal(parseCountsQuery({ from: '0', to: String(MAX_RANGE_MS) }, NOW).to, MAX_RANGE_MS);
    });

    it('parseAdvertiserFilter: optional, exact', () => {
      assert.equal(parseAdvertiserFilter({}), null);
      assert.equal(parseAdvertiserFilter({ advertiser_id: 'Adv.1', other: 'x' }), 'Adv.1');
      assert.equal(badParam(() => parseAdvertiserFilter({ advertiser_id: "a'" })).parameter, 'advertiser_id');
    });
  });

  describe('SQL', () => {
    const q: CountsQuery = { advertiserId: 'adv-1', campaignId: 'cmp:7', from: 1_500, to: 3_000_001, granularity: 'window' };

    it('counts: FINAL, literal ids, whole-second bounds rounded up, UTC periods by integer arithmetic', () => {
      const sql = countsSql('tally', q, 10);
      assert.match(sql, /FROM tally\.impression_counts FINAL /);
      assert.match(sql, /window_start >= toDateTime\(2\) AND window_start < toDateTime\(3001\)/);
      assert.match(sql, /advertiser_id = 'adv-1' AND campaign_id = 'cmp:7'/);
      assert.match(sql, /SELECT toUInt32\(window_start\) AS period_s/);
      assert.match(sql, /LIMIT 10$/);
      assert.match(countsSql('tally', { ...q, granularity: 'hour' }, 10), /intDiv\(toUInt32\(window_start\), 3600\) \* 3600 AS period_s/);
      assert.match(countsSql('tally', { ...q, granularity: 'day' }, 10), /intDiv\(toUInt32\(window_start\), 86400\) \* 86400 AS period_s/);
      assert.doesNotMatch(countsSql('tally', { ...q, advertiserId: null, campaignId: null }, 10), /advertiser_id =|campaign_id =/);
      assert.doesNotMatch(sql, /toStartOfInterval/);
    });

    it('refuses an id that is not a contract id even if a route forgot to validate it', () => {
      assert.throws(() => countsSql('tally', { ...q, advertiserId: "x' OR 1=1 --" }, 10), /not a valid id/);
      assert.throws(() => campaignsSql('tally', ["a'"], 10), /not a valid id/);
      assert.throws(() => countsSql('tally; DROP', q, 10), /not a valid identifier/);
    });

    it('campaigns and advertisers filter by the readable list (none: nothing, null: all)', () => {
      assert.match(campaignsSql('db', ['a', 'b'], 5), /WHERE advertiser_id IN \('a', 'b'\) /);
      assert.match(campaignsSql('db', null, 5), /WHERE 1 /);
      assert.match(advertisersSql('db', []), /WHERE 0 /);
    });

    it('countsResponse: exact totals, period ends', () => {
      const raw = [
        { period_s: 3600, end_s: 3660, advertiser_id: 'a', campaign_id: 'c', impressions: '9007199254740990', spend_micros: '5', duplicates: '1' },
        { period_s: 3600, end_s: 7200, advertiser_id: 'a', campaign_id: 'd', impressions: '1', spend_micros: 7, duplicates: 0 },
      ];
      const ctx = { windowMs: 60_000, allowedLatenessMs: 30_000, frontier: { finalBefore: 7_200_000, rolledBefore: null, minWatermark: 7_300_000 } };
      const r = countsResponse({ ...q, granularity: 'hour' }, raw, ctx);
      assert.deepEqual(r.rows[0], {
        periodStart: 3_600_000, periodEnd: 7_200_000, advertiserId: 'a', campaignId: 'c', impressions: 9007199254740990, spendMicros: 5, duplicates: 1, maturity: 'final',
      });
      assert.deepEqual(r.totals, { impressions: 9007199254740991, spendMicros: 12, duplicates: 1, maturity: 'final' });
      assert.equal(countsResponse(q, raw, ctx).rows[0].periodEnd, 3_660_000);
      assert.throws(() => countsResponse(q, [{ ...raw[0], impressions: '9007199254740992' }], ctx), /not exact/);
      assert.equal(countsResponse(q, [], { ...ctx, frontier: { finalBefore: null, rolledBefore: null, minWatermark: null } }).totals.maturity, 'live', 'no rows: the range\'s');
      assert.equal(exactNumber('0'), 0);
      assert.throws(() => exactNumber('-1'), /not exact/);
    });
  });

  it('metrics route labels are bounded: known routes, api_unmatched, web', () => {
    assert.equal(routeLabel('/api/v1/counts?advertiser_id=x'), '/api/v1/counts');
    assert.equal(routeLabel('/API/v1/Counts/'), '/api/v1/counts');
    assert.equal(routeLabel('/api/v1/whatever/123'), 'api_unmatched');
    assert.equal(routeLabel('/api'), 'api_unmatched');
    assert.equal(routeLabel('/campaigns/adv-1'), 'web');
    assert.equal(routeLabel('/metrics'), '/metrics');
  });
});
