import assert from 'node:assert/strict';
import { BillingParamError, parsePeriodsParams } from '../../server/src/billing/index.js';
import { periodClosesSql, periodTimeline, type PartitionClose } from '../../server/src/ledger/index.js';

const H = 3_600_000;
const T0 = Date.UTC(2025, 0, 1);

function timeline(closes: PartitionClose[], minWatermark: number | null, now = T0 + 10 * H) {
  return periodTimeline({
    from: T0, to: T0 + 4 * H, partitions: 2, closes, allowedLatenessMs: 30_000, closeAfterMs: 30_000 + 600_000, now,
    frontier: { finalBefore: null, rolledBefore: null, minWatermark },
  });
}

describe('ledger: billing period timeline', () => {
  it('a period is final when every partition closed it or a later one; final_at is the last of those closes', () => {
    const closes: PartitionClose[] = [
      // Partition 0 closed hours 0 and 1; partition 1 first closed hour 1 (it held nothing of hour 0).
      { partition: 0, periodStart: T0, closedAt: T0 + 2 * H },
      { partition: 0, periodStart: T0 + H, closedAt: T0 + 3 * H },
      { partition: 1, periodStart: T0 + H, closedAt: T0 + 3 * H + 5_000 },
    ];
    const t = timeline(closes, T0 + 3 * H + 15 * 60_000);
    assert.deepEqual(t.map((p) => p.maturity), ['final', 'final', 'provisional', 'live']);
    assert.deepEqual(t.map((p) => p.closedPartitions), [2, 2, 0, 0]);
    assert.equal(t[0].finalAt, T0 + 3 * H + 5_000, 'hour 0 became final when partition 1 closed hour 1');
    assert.equal(t[1].finalAt, T0 + 3 * H + 5_000);
    assert.equal(t[0].expectedFinalAt, null);
    // Hour 3 ends at 4 h; it closes once the slowest watermark (3 h 15 min) passes 4 h + 10.5 min: 55.5 min from now.
    assert.equal(t[3].expectedFinalAt, T0 + 10 * H + 55.5 * 60_000);
    assert.equal(t[2].expectedFinalAt, T0 + 10 * H, 'hour 2: the watermark passed its close point, expected as soon as a partition closes it');
    assert.equal(t[2].finalAt, null);
  });

  it('one partition short is not final; a watermark past the close point expects it now; no watermark, no estimate', () => {
    const closes: PartitionClose[] = [{ partition: 0, periodStart: T0 + 3 * H, closedAt: T0 + 5 * H }];
    const t = timeline(closes, T0 + 8 * H);
    assert.ok(t.every((p) => p.maturity === 'provisional' && p.finalAt === null && p.closedPartitions === 1));
    assert.ok(t.every((p) => p.expectedFinalAt === T0 + 10 * H), 'overdue: expected as soon as the last partition closes it');
    assert.ok(timeline(closes, null).every((p) => p.expectedFinalAt === null && p.maturity === 'live'));
    // A close from a partition the configuration does not have is ignored.
    assert.equal(timeline([...closes, { partition: 7, periodStart: T0 + 3 * H, closedAt: T0 + 5 * H }], null)[0].closedPartitions, 1);
  });

  it('reads each partition\'s closes in the range and its first close after it', () => {
    const sql = periodClosesSql('tally', T0, T0 + 4 * H);
    assert.match(sql, /period_start >= toDateTime\(1735689600\) AND period_start < toDateTime\(1735704000\) GROUP BY p, s/);
    assert.match(sql, /argMin\(closed_at, period_start\)\) AS at FROM tally\.period_closes WHERE period_start >= toDateTime\(1735704000\) GROUP BY p/);
  });
});

describe('billing: periods parameters', () => {
  const now = T0 + 5 * H + 1_234;
  it('defaults to the 48 hours up to the end of the current hour', () => {
    assert.deepEqual(parsePeriodsParams({}, now), { from: T0 + 6 * H - 48 * H, to: T0 + 6 * H });
    assert.deepEqual(parsePeriodsParams({ from: '2025-01-01T00:00:00Z' }, now), { from: T0, to: T0 + 48 * H });
    assert.deepEqual(parsePeriodsParams({ to: String(T0 + 48 * H) }, now), { from: T0, to: T0 + 48 * H });
  });

  it('refuses unaligned, reversed, repeated and too long ranges, naming the parameter', () => {
    const bad = (q: Record<string, unknown>) => {
      try {
        parsePeriodsParams(q, now);
      } catch (err) {
        assert.ok(err instanceof BillingParamError, String(err));
        return err.parameter;
      }
      return assert.fail(`accepted ${JSON.stringify(q)}`);
    };
    assert.equal(bad({ from: '2025-01-01T00:30:00Z' }), 'from');
    assert.equal(bad({ from: '2025-01-02', to: '2025-01-01' }), 'from');
    assert.equal(bad({ from: ['2025-01-01', '2025-01-02'] }), 'from');
    assert.equal(bad({ from: '2025-01-01', to: '2025-06-01' }), 'to');
    assert.equal(bad({ to: "2025-01-01' OR 1=1" }), 'to');
    assert.equal(bad({ to: '1970-01-01T01:00:00Z' }), 'to');
  });
});
