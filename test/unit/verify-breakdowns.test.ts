import assert from 'node:assert/strict';
import { DIMENSIONS, OTHER_VALUE, UNKNOWN_VALUE, type Dimension } from '../../server/src/contracts/dimensions.js';
import {
  actualBreakdownsSql, compareWithTruth, dimensionValuesOf, formatVerifyReport, truthRowsOf,
  type ActualBreakdownRow, type ActualRow, type TruthRow, type VerifyResult,
} from '../../server/src/tools/index.js';

const W = 60_000;
const T0 = Date.UTC(2025, 10, 26, 12, 0, 0, 0);

/** Two rows: 4 impressions of one campaign in one window, 2 of another in the next. */
function truthRows(): TruthRow[] {
  const imp = (ts: number, campaignId: string, costMicros: number, body: Record<string, unknown>) =>
    ({ ts, advertiserId: 'adv-1', campaignId, costMicros, dimensionValues: dimensionValuesOf(body) });
  return truthRowsOf([
    imp(T0 + 1, 'adv-1-cmp-1', 100, { country: 'DE', device: 'mobile', creative_id: 'cr-1', publisher_id: 'pub-1' }),
    imp(T0 + 2, 'adv-1-cmp-1', 200, { country: 'DE', device: 'desktop', creative_id: 'cr-2', publisher_id: 'pub-2' }),
    imp(T0 + 3, 'adv-1-cmp-1', 300, { country: 'FR', creative_id: 'cr-3', publisher_id: 'pub-3' }),
    imp(T0 + 4, 'adv-1-cmp-1', 400, { country: 'US', device: 'mobile', creative_id: 'cr-4', publisher_id: 'pub-4' }),
    imp(T0 + W, 'adv-1-cmp-2', 5_000, { country: 'DE', device: 'tablet', creative_id: 'cr-1' }),
    imp(T0 + W + 1, 'adv-1-cmp-2', 7_000, { country: 'DE', device: 'tablet', creative_id: 'cr-1' }),
  ], W);
}

const countsOf = (rows: TruthRow[]): ActualRow[] =>
  rows.map((r) => ({ windowStart: r.windowStart, advertiserId: r.advertiserId, campaignId: r.campaignId, impressions: BigInt(r.impressions), spendMicros: BigInt(r.spendMicros) }));

/** ClickHouse's breakdown rows equal to the truth's, each value split over two source partitions (verify's SQL sums them; so does the comparison). */
function breakdownsOf(rows: TruthRow[]): ActualBreakdownRow[] {
  return rows.flatMap((r) => DIMENSIONS.flatMap((dimension) => Object.entries(r.breakdowns?.[dimension] ?? {}).flatMap(([value, [n, spend]]) => {
    const at = { windowStart: r.windowStart, advertiserId: r.advertiserId, campaignId: r.campaignId, dimension, value };
    const half = BigInt(Math.floor(n / 2));
    return [
      { ...at, impressions: BigInt(n) - half, spendMicros: BigInt(spend) },
      ...(half > 0n ? [{ ...at, impressions: half, spendMicros: 0n }] : []),
    ];
  })));
}

function compare(rows: TruthRow[], actual: ActualBreakdownRow[], dimensions: readonly Dimension[] = DIMENSIONS) {
  return compareWithTruth({ rows }, countsOf(rows), { dimensions, rows: actual });
}

const is = (a: ActualBreakdownRow, campaignId: string, dimension: Dimension, value: string) =>
  a.campaignId === campaignId && a.dimension === dimension && a.value === value;

describe('verify: breakdowns against the truth', () => {
  it('passes when every value of every configured dimension is equal, summed over partitions', () => {
    const rows = truthRows();
    const cmp = compare(rows, breakdownsOf(rows));
    assert.equal(cmp.ok, true, JSON.stringify(cmp.breakdowns.differences));
    assert.deepEqual(cmp.breakdowns, { dimensions: [...DIMENSIONS], notCompared: null, exact: 8, folded: 0, differences: [] });
    assert.equal(rows[0].breakdowns?.device?.[UNKNOWN_VALUE]?.[0], 1, 'a missing field counts as unknown');
  });

  it('names the dimension and value of a missing value, an extra one and a spend one micro off', () => {
    const rows = truthRows();
    const actual = breakdownsOf(rows)
      .filter((a) => !is(a, 'adv-1-cmp-1', 'country', 'FR'))
      .map((a) => (is(a, 'adv-1-cmp-2', 'device', 'tablet') && a.spendMicros > 0n ? { ...a, spendMicros: a.spendMicros + 1n } : a));
    actual.push({ ...actual[0], dimension: 'publisher_id', value: 'pub-9', impressions: 1n, spendMicros: 10n });
    const cmp = compare(rows, actual);
    assert.equal(cmp.ok, false);
    assert.deepEqual(cmp.differences, [], 'the counts themselves are equal');
    const at = (campaignId: string, windowStart: number) => ({ windowStart, advertiserId: 'adv-1', campaignId });
    assert.deepEqual(cmp.breakdowns.differences, [
      { ...at('adv-1-cmp-1', T0), dimension: 'publisher_id', value: 'pub-9', kind: 'extra', expectedImpressions: null, actualImpressions: '1', expectedSpendMicros: null, actualSpendMicros: '10' },
      { ...at('adv-1-cmp-1', T0), dimension: 'country', value: 'FR', kind: 'missing', expectedImpressions: '1', actualImpressions: null, expectedSpendMicros: '300', actualSpendMicros: null },
      { ...at('adv-1-cmp-2', T0 + W), dimension: 'device', value: 'tablet', kind: 'different', expectedImpressions: '2', actualImpressions: '2', expectedSpendMicros: '12000', actualSpendMicros: '12001' },
    ]);
    const report = formatVerifyReport({ ...cmp, attempts: 1, elapsedMs: 0, deadLetters: null, error: null } satisfies VerifyResult);
    assert.match(report, /adv-1-cmp-2\s+device\s+tablet\s+different\s+2\s+2\s+12000\s+12001/);
    assert.match(report, /adv-1-cmp-1\s+country\s+FR\s+missing/);
    assert.match(report, /3 differing breakdown values: 1 missing, 1 extra, 1 different/);
    assert.match(report, /MISMATCH/);
  });

  it('applies the `other` rule where ClickHouse folded values: named values at most the truth, the dimension summing to the row', () => {
    const rows = truthRows();
    // cmp-1's creatives with a limit of 2 in one partition: cr-1 and cr-2 named, cr-3 and cr-4 folded.
    const folded = (extra: (a: ActualBreakdownRow) => ActualBreakdownRow[] = () => []) => breakdownsOf(rows).flatMap((a) => {
      if (!(a.campaignId === 'adv-1-cmp-1' && a.dimension === 'creative_id')) return [a];
      if (a.value === 'cr-3' || a.value === 'cr-4') return [{ ...a, value: OTHER_VALUE }, ...extra(a)];
      return [a];
    });
    const ok = compare(rows, folded());
    assert.equal(ok.ok, true, JSON.stringify(ok.breakdowns.differences));
    assert.deepEqual([ok.breakdowns.exact, ok.breakdowns.folded], [7, 1]);
    assert.match(formatVerifyReport({ ...ok, attempts: 1, elapsedMs: 0, deadLetters: null, error: null }), /breakdowns {3}creative_id, publisher_id, country, device: 7 compared value by value, 1 by the `other` rule/);

    // Only some of cr-1 named (the rest in `other` from another partition): still fine.
    const partly = folded().map((a) => (is(a, 'adv-1-cmp-1', 'creative_id', 'cr-1') ? { ...a, value: OTHER_VALUE } : a));
    assert.equal(compare(rows, partly).ok, true);

    // A named value above the truth, though the dimension still sums right.
    let moved = false;
    const above = folded().map((a) => {
      if (is(a, 'adv-1-cmp-1', 'creative_id', 'cr-1')) return { ...a, impressions: a.impressions + 1n };
      if (is(a, 'adv-1-cmp-1', 'creative_id', OTHER_VALUE) && !moved) {
        moved = true;
        return { ...a, impressions: a.impressions - 1n };
      }
      return a;
    });
    const cmpAbove = compare(rows, above);
    assert.deepEqual(cmpAbove.breakdowns.differences.map((d) => [d.dimension, d.value, d.kind, d.expectedImpressions, d.actualImpressions]),
      [['creative_id', 'cr-1', 'above_truth', '1', '2']]);

    // One micro too many in `other`: the sum differs; a value the truth has not at all is extra.
    const sum = compare(rows, folded((a) => (a.value === 'cr-4' ? [{ ...a, value: 'cr-9', impressions: 0n, spendMicros: 1n }] : [])));
    assert.deepEqual(sum.breakdowns.differences.map((d) => [d.value, d.kind, d.expectedSpendMicros, d.actualSpendMicros]),
      [[null, 'sum_different', '1000', '1001'], ['cr-9', 'extra', null, '1']]);
    assert.match(formatVerifyReport({ ...sum, attempts: 1, elapsedMs: 0, deadLetters: null, error: null }), /creative_id\s+\(sum\)\s+sum_different/);
  });

  it('compares only the configured dimensions the truth knows, and says so when none', () => {
    const rows = truthRows();
    const wrongCountry = breakdownsOf(rows).map((a) => (a.dimension === 'country' ? { ...a, value: 'XX' } : a));
    assert.equal(compare(rows, wrongCountry).ok, false);
    const devices = compare(rows, wrongCountry, ['device']);
    assert.equal(devices.ok, true);
    assert.deepEqual([devices.breakdowns.dimensions, devices.breakdowns.exact], [['device'], 2]);

    const none = compare(rows, wrongCountry, []);
    assert.equal(none.ok, true);
    assert.equal(none.breakdowns.notCompared, 'no dimension configured (TALLY_DIMENSIONS)');
    assert.equal(compareWithTruth({ rows }, countsOf(rows)).breakdowns.notCompared, 'no dimension configured (TALLY_DIMENSIONS)', 'not asked: not compared');

    // A hand-made truth (no breakdowns): nothing compared, whatever ClickHouse has.
    const hand = rows.map(({ breakdowns: _, ...r }) => r);
    const handCmp = compare(hand, wrongCountry);
    assert.equal(handCmp.ok, true);
    assert.equal(handCmp.breakdowns.notCompared, 'the truth has no breakdowns');
    assert.match(formatVerifyReport({ ...handCmp, attempts: 1, elapsedMs: 0, deadLetters: null, error: null }), /breakdowns {3}not compared: the truth has no breakdowns/);
    // Only one row known: the other row's values are not compared, a key the truth lacks entirely is extra.
    const mixed = [rows[0], hand[1]];
    const stranger = { ...breakdownsOf(rows)[0], campaignId: 'adv-1-cmp-3' };
    const mixedCmp = compare(mixed, [...breakdownsOf(rows).map((a) => (a.campaignId === 'adv-1-cmp-2' ? { ...a, value: 'XX' } : a)), stranger]);
    assert.deepEqual(mixedCmp.breakdowns.differences.map((d) => [d.campaignId, d.dimension, d.value, d.kind]), [['adv-1-cmp-3', 'creative_id', 'cr-1', 'extra']]);
    assert.equal(mixedCmp.breakdowns.exact, 4);
  });

  it('reads with escaped literals only', () => {
    assert.equal(actualBreakdownsSql('tally', "it's_", ['country', 'device']),
      'SELECT toUnixTimestamp(window_start) * 1000 AS ws, advertiser_id, campaign_id, dimension, value, sum(impressions) AS imps, sum(spend_micros) AS spend '
      + "FROM tally.impression_breakdowns FINAL WHERE advertiser_id LIKE 'it\\'s\\\\_%' AND dimension IN ('country', 'device') "
      + 'GROUP BY ws, advertiser_id, campaign_id, dimension, value');
    assert.match(actualBreakdownsSql('tally', '', ['device']), /FINAL WHERE dimension IN \('device'\) GROUP BY/);
    assert.throws(() => actualBreakdownsSql('tally; DROP', '', ['device']), /not a valid identifier/);
  });
});
