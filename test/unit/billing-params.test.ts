import assert from 'node:assert/strict';
import { BillingParamError, parseExportParams, parseExportTime, PERIOD_MS } from '../../server/src/billing/index.js';
import { lateUnbillableSql, lineageSql, periodRowsSql } from '../../server/src/ledger/index.js';

function paramError(query: Record<string, unknown>): string {
  try {
    parseExportParams(query);
  } catch (err) {
    assert.ok(err instanceof BillingParamError, String(err));
    return err.parameter;
  }
  assert.fail(`accepted ${JSON.stringify(query)}`);
}

const base = { advertiser_id: 'adv-1', from: '2025-01-01', to: '2025-01-02' };

describe('billing: export parameters', () => {
  it('accepts dates, ISO date-times with a zone and epoch ms, with defaults day/csv', () => {
    assert.deepEqual(parseExportParams(base), { advertiserId: 'adv-1', from: Date.UTC(2025, 0, 1), to: Date.UTC(2025, 0, 2), granularity: 'day', format: 'csv' });
    const q = parseExportParams({ advertiser_id: 'a', from: '2025-01-01T10:00:00Z', to: String(Date.UTC(2025, 0, 1, 12)), granularity: 'hour', format: 'json' });
    assert.deepEqual([q.from, q.to, q.granularity, q.format], [Date.UTC(2025, 0, 1, 10), Date.UTC(2025, 0, 1, 12), 'hour', 'json']);
    assert.equal(parseExportTime('2025-01-01T12:00:00+02:00'), Date.UTC(2025, 0, 1, 10));
    assert.equal(parseExportParams({ ...base, from: '2024-12-31T23:00:00-01:00' }).from, Date.UTC(2025, 0, 1));
  });

  it('requires alignment to the granularity (UTC)', () => {
    assert.equal(paramError({ ...base, from: '2025-01-01T10:00:00Z' }), 'from');
    assert.equal(paramError({ ...base, to: '2025-01-02T00:00:00+01:00' }), 'to');
    assert.equal(paramError({ ...base, granularity: 'hour', from: '2025-01-01T10:30:00Z' }), 'from');
    assert.equal(paramError({ ...base, granularity: 'hour', from: String(Date.UTC(2025, 0, 1) + 1) }), 'from');
    assert.equal(paramError({ ...base, granularity: 'hour', to: '2025-01-01T10:00:00.001Z' }), 'to');
    assert.equal(parseExportParams({ ...base, granularity: 'hour', from: '2025-01-01T10:00:00Z' }).from, Date.UTC(2025, 0, 1, 10));
  });

  it('requires from < to and at most 93 days', () => {
    assert.equal(paramError({ ...base, to: '2025-01-01' }), 'from');
    assert.equal(paramError({ ...base, from: '2025-01-03' }), 'from');
    assert.equal(parseExportParams({ ...base, to: '2025-04-04' }).to, Date.UTC(2025, 3, 4));
    assert.equal(paramError({ ...base, to: '2025-04-05' }), 'to');
  });

  it('refuses missing, malformed, repeated and injection-shaped values, naming the parameter', () => {
    assert.equal(paramError({ from: base.from, to: base.to }), 'advertiser_id');
    assert.equal(paramError({ advertiser_id: 'a', to: base.to }), 'from');
    assert.equal(paramError({ advertiser_id: 'a', from: base.from }), 'to');
    for (const id of ["adv-1' OR 1=1 --", "adv-1'; DROP TABLE x", 'adv 1', '', 'a'.repeat(129), 'adv\n1', "\\'"]) {
      assert.equal(paramError({ ...base, advertiser_id: id }), 'advertiser_id', id);
    }
    assert.equal(paramError({ ...base, advertiser_id: ['adv-1', 'adv-2'] }), 'advertiser_id');
    assert.equal(paramError({ ...base, advertiser_id: { x: '1' } }), 'advertiser_id');
    for (const t of ["2025-01-01'", '2025-01-01 00:00:00', '2025-02-30', '2025-01-01T00:00:00', 'toDateTime(0)', '-1', '1e12', '99999999999999']) {
      assert.equal(paramError({ ...base, from: t }), 'from', t);
    }
    assert.equal(paramError({ ...base, granularity: 'hour; DROP' }), 'granularity');
    assert.equal(paramError({ ...base, granularity: 'window' }), 'granularity');
    assert.equal(paramError({ ...base, format: 'csv\n' }), 'format');
    assert.equal(paramError({ ...base, format: 'xml' }), 'format');
  });

  it('builds SQL from validated values only: final hours from the ledger, the rest from the window rows', () => {
    const q = parseExportParams({ ...base, granularity: 'hour' });
    const finalBefore = q.from + 6 * 3_600_000;
    const sql = periodRowsSql('tally', { advertiserId: q.advertiserId, campaignId: null, from: q.from, to: q.to, periodMs: PERIOD_MS[q.granularity] }, { finalBefore, rolledBefore: q.from + 3_600_000 }, null);
    assert.match(sql, /advertiser_id = 'adv-1'/);
    assert.match(sql, /FROM tally\.billing_statement WHERE .*period_start >= toDateTime\(1735689600\) AND period_start < toDateTime\(1735693200\) AND \(period_start, rollup_id\) IN \(SELECT period_start, min\(rollup_id\) FROM tally\.final_periods WHERE period_start >= toDateTime\(1735689600\) AND period_start < toDateTime\(1735693200\) GROUP BY period_start\)/, 'rolled-up final hours, the roll-up final_periods names');
    assert.match(sql, /FROM tally\.billing_ledger WHERE .*period_start >= toDateTime\(1735693200\) AND period_start < toDateTime\(1735711200\) GROUP BY period_start, advertiser_id, campaign_id, source_partition/, 'final hours not rolled up yet');
    assert.match(sql, /intDiv\(toUInt32\(window_start\), 3600\) \* 3600/);
    assert.match(sql, /impression_counts FINAL WHERE .*window_start >= toDateTime\(1735711200\) AND window_start < toDateTime\(1735776000\)/);
    assert.doesNotMatch(sql, /LIMIT/);
    assert.match(lateUnbillableSql('tally', 'adv-1', q.from, q.to, finalBefore), /billing_late WHERE advertiser_id = 'adv-1' AND arrival_period >= toDateTime\(1735689600\) AND arrival_period < toDateTime\(1735711200\)/);
    const arrived = 'if\\(toUInt32\\(arrival_period\\) = 0, inserted_at, arrival_period\\)';
    assert.match(lateUnbillableSql('tally', 'adv-1', q.from, q.to, finalBefore),
      new RegExp(`dead_letters FINAL WHERE reason = 'too_late' AND advertiser_id = 'adv-1' AND ${arrived} >= toDateTime\\(1735711200\\) AND ${arrived} < toDateTime\\(1735776000\\) GROUP BY`),
      'open arrival periods from the dead letters by the same arrival period as billing_late (inserted_at only for rows without one)');
    assert.match(lineageSql('tally', q.from, finalBefore), /period_closes WHERE period_start >= toDateTime\(1735689600\) AND period_start < toDateTime\(1735711200\)/);
    assert.throws(() => periodRowsSql('tally', { advertiserId: "x' OR 1=1", campaignId: null, from: q.from, to: q.to, periodMs: 3_600_000 }, { finalBefore: null, rolledBefore: null }, null), /not a valid id/);
    assert.throws(() => lateUnbillableSql('tally', "x'", q.from, q.to, null), /not a valid id/);
  });
});
