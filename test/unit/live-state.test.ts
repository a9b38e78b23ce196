import assert from 'node:assert/strict';
import { LiveState, liveRangeStart, type LiveRowInput } from '../../server/src/live/live-state.js';

const W = 60_000;
const L = 30_000;
const NOW = Date.UTC(2025, 10, 26, 12, 0, 30);
const T0 = Date.UTC(2025, 10, 26, 11, 50, 0);

function row(over: Partial<LiveRowInput> = {}): LiveRowInput {
  return {
    windowStart: T0, windowEnd: T0 + W, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: 0,
    impressions: 10, spendMicros: 1_000n, duplicates: 0, version: 1, ...over,
  };
}

function state(partitions = 2, now = NOW): LiveState {
  return new LiveState({ partitions, windowMs: W, allowedLatenessMs: L }, now);
}

describe('live LiveState', () => {
  it('keeps the highest version per (window, advertiser, campaign, partition), in any order', () => {
    const s = state();
    assert.equal(s.applyRow(row({ version: 1, impressions: 1 })).kind, 'applied');
    assert.equal(s.applyRow(row({ version: 3, impressions: 3, spendMicros: 300n })).kind, 'applied');
    assert.equal(s.applyRow(row({ version: 2, impressions: 2 })).kind, 'stale');
    assert.equal(s.applyRow(row({ version: 3, impressions: 99 })).kind, 'stale', 'an equal version never replaces');
    const [r] = s.snapshotRows('adv-1');
    assert.equal(r.impressions, 3);
    assert.equal(r.spendMicros, 300);
    assert.equal(s.stats.rows, 1);
    assert.equal(s.stats.staleIgnored, 2);
  });

  it('sums the source partitions of a (window, advertiser, campaign); a new version replaces, never adds', () => {
    const s = state(3);
    s.applyRow(row({ sourcePartition: 0, impressions: 5, spendMicros: 50n, duplicates: 1 }));
    s.applyRow(row({ sourcePartition: 1, impressions: 7, spendMicros: 70n, duplicates: 2 }));
    s.applyRow(row({ sourcePartition: 2, impressions: 1, spendMicros: 10n }));
    s.applyRow(row({ sourcePartition: 1, impressions: 8, spendMicros: 80n, duplicates: 3, version: 2 }));
    s.applyRow(row({ campaignId: 'cmp-2', impressions: 4 }));
    const rows = s.snapshotRows('adv-1');
    assert.deepEqual(rows.map((r) => [r.campaignId, r.impressions, r.spendMicros, r.duplicates]), [['cmp-1', 14, 140, 4], ['cmp-2', 4, 1_000, 0]]);
    assert.equal(s.duplicatesRemoved, 4);
    assert.equal(s.stats.rows, 4);
    assert.equal(s.stats.aggregates, 2);
  });

  it('a window is final only when every partition published a watermark ≥ end + lateness', () => {
    const s = state(3);
    s.applyRow(row());
    const closeAt = T0 + W + L;
    assert.equal(s.snapshotRows(null)[0].final, false);
    s.applyWatermark(0, closeAt + 10_000, NOW);
    s.applyWatermark(1, closeAt, NOW);
    assert.equal(s.minWatermark(), null, 'partition 2 never published');
    assert.equal(s.publishedWatermark, 0);
    assert.equal(s.snapshotRows(null)[0].final, false);
    s.applyWatermark(2, closeAt - 1, NOW);
    assert.equal(s.minWatermark(), closeAt - 1);
    assert.equal(s.snapshotRows(null)[0].final, false);
    s.applyWatermark(2, closeAt, NOW);
    assert.equal(s.snapshotRows(null)[0].final, true);
    // Watermarks never go back.
    assert.equal(s.applyWatermark(2, closeAt - 5_000, NOW + 1), false);
    assert.equal(s.minWatermark(), closeAt);
  });

  it('partitions beyond the configured count do not count; lastEmittedAt is the newest transaction', () => {
    const s = state(1);
    s.applyWatermark(0, 1_000, NOW - 500);
    s.applyWatermark(5, 0, NOW - 100);
    assert.equal(s.minWatermark(), 1_000);
    assert.equal(s.lastEmittedAt, NOW - 100);
    assert.deepEqual(s.partitionWatermarks(), [{ partition: 0, watermark: 1_000, emittedAt: NOW - 500 }]);
  });

  it('tracks changes per advertiser since the last drain, with absolute values', () => {
    const s = state(1);
    s.applyRow(row({ advertiserId: 'adv-1', impressions: 1 }));
    s.applyRow(row({ advertiserId: 'adv-2', campaignId: 'cmp-9', impressions: 2 }));
    let d = s.drainChanges();
    assert.deepEqual([...d.byAdvertiser.keys()].sort(), ['adv-1', 'adv-2']);
    assert.equal(d.byAdvertiser.get('adv-2')?.[0].impressions, 2);
    assert.equal(s.drainChanges().byAdvertiser.size, 0, 'nothing changed since');

    s.applyRow(row({ advertiserId: 'adv-1', impressions: 5, version: 2 }));
    s.applyRow(row({ advertiserId: 'adv-1', impressions: 1, version: 1 })); // stale: no change
    d = s.drainChanges();
    assert.deepEqual([...d.byAdvertiser.keys()], ['adv-1']);
    assert.deepEqual(d.byAdvertiser.get('adv-1')?.map((r) => r.impressions), [5]);
    assert.equal(d.byAdvertiser.get('adv-1')?.[0].advertiserId, 'adv-1');
  });

  it('reports rows that became final as changes, once, and the watermark move', () => {
    const s = state(1);
    s.applyRow(row({ windowStart: T0, windowEnd: T0 + W }));
    s.applyRow(row({ windowStart: T0 + W, windowEnd: T0 + 2 * W, advertiserId: 'adv-2' }));
    s.drainChanges();
    s.applyWatermark(0, T0 + W + L, NOW);
    let d = s.drainChanges();
    assert.equal(d.watermarkChanged, true);
    assert.equal(d.watermark, T0 + W + L);
    assert.deepEqual([...d.byAdvertiser.keys()], ['adv-1']);
    assert.equal(d.byAdvertiser.get('adv-1')?.[0].final, true);
    d = s.drainChanges();
    assert.equal(d.watermarkChanged, false);
    assert.equal(d.byAdvertiser.size, 0);
    s.applyWatermark(0, T0 + 2 * W + L, NOW);
    d = s.drainChanges();
    assert.deepEqual([...d.byAdvertiser.keys()], ['adv-2']);
    assert.equal(d.byAdvertiser.get('adv-2')?.[0].final, true);
  });

  it('a late row in a final window is a change flagged final; windows created out of order close in end order', () => {
    const s = state(1);
    s.applyRow(row({ windowStart: T0 + 2 * W, windowEnd: T0 + 3 * W, campaignId: 'c' }));
    s.applyRow(row({ windowStart: T0, windowEnd: T0 + W, campaignId: 'a' }));
    s.applyRow(row({ windowStart: T0 + W, windowEnd: T0 + 2 * W, campaignId: 'b' }));
    s.drainChanges();
    s.applyWatermark(0, T0 + 2 * W + L, NOW);
    const d = s.drainChanges();
    assert.deepEqual(d.byAdvertiser.get('adv-1')?.map((r) => [r.campaignId, r.final]), [['a', true], ['b', true]]);
    s.applyRow(row({ windowStart: T0, windowEnd: T0 + W, campaignId: 'a', sourcePartition: 0, impressions: 11, version: 2 }));
    assert.deepEqual(s.drainChanges().byAdvertiser.get('adv-1')?.map((r) => [r.campaignId, r.impressions, r.final]), [['a', 11, true]]);
  });

  it('snapshots one advertiser or all, sorted', () => {
    const s = state(1);
    s.applyRow(row({ advertiserId: 'adv-2', windowStart: T0 + W, windowEnd: T0 + 2 * W }));
    s.applyRow(row({ advertiserId: 'adv-1', campaignId: 'b' }));
    s.applyRow(row({ advertiserId: 'adv-1', campaignId: 'a' }));
    s.applyRow(row({ advertiserId: 'adv-2' }));
    assert.deepEqual(s.snapshotRows('adv-1').map((r) => r.campaignId), ['a', 'b']);
    assert.ok(s.snapshotRows('adv-2').every((r) => r.advertiserId === 'adv-2'));
    assert.deepEqual(s.snapshotRows(null).map((r) => `${r.windowStart - T0}/${r.advertiserId}/${r.campaignId}`),
      ['0/adv-1/a', '0/adv-1/b', '0/adv-2/cmp-1', `${W}/adv-2/cmp-1`]);
    assert.deepEqual(s.snapshotRows('adv-3'), []);
    assert.deepEqual(s.advertisers(), ['adv-1', 'adv-2']);
  });

  it('keeps the last 24 h (aligned to the hour and window), ignores older rows and prunes as time passes', () => {
    const start = liveRangeStart(NOW, W);
    assert.equal(start, Date.UTC(2025, 10, 25, 12, 0, 0));
    assert.ok(start <= Date.UTC(2025, 10, 26, 0, 0, 0), 'today UTC included');
    const s = state(1);
    assert.equal(s.rangeStart, start);
    assert.equal(s.applyRow(row({ windowStart: start - W, windowEnd: start })).kind, 'out_of_range');
    s.applyRow(row({ windowStart: start, windowEnd: start + W, duplicates: 2 }));
    s.applyRow(row({ windowStart: start + 2 * 3_600_000, windowEnd: start + 2 * 3_600_000 + W, advertiserId: 'adv-2' }));
    s.applyRow(row({ duplicates: 1 }));
    assert.equal(s.duplicatesRemoved, 3);
    s.applyRow(row({ windowStart: start, windowEnd: start + W, version: 2, impressions: 99, duplicates: 2 }));
    assert.equal(s.prune(NOW), 0);
    // 90 minutes later: the first hour and the window two hours in are still kept? The first is gone.
    const dropped = s.prune(NOW + 90 * 60_000);
    assert.equal(dropped, 1);
    assert.equal(s.rangeStart, Date.UTC(2025, 10, 25, 13, 0, 0));
    assert.equal(s.duplicatesRemoved, 1);
    assert.deepEqual(s.snapshotRows('adv-1').map((r) => r.windowStart), [T0]);
    assert.equal(s.snapshotRows('adv-2').length, 1);
    // A pruned row that had changed is not reported.
    assert.ok(![...s.drainChanges().byAdvertiser.values()].flat().some((r) => r.windowStart === start));
    assert.equal(s.stats.rows, 2);
    // Its window cannot come back.
    assert.equal(s.applyRow(row({ windowStart: start, windowEnd: start + W, version: 3 })).kind, 'out_of_range');
  });

  it('pruned windows that never became final do not break later drains', () => {
    const s = state(2);
    s.applyRow(row({ windowStart: s.rangeStart, windowEnd: s.rangeStart + W }));
    s.applyRow(row());
    s.prune(NOW + 2 * 3_600_000);
    s.applyWatermark(0, T0 + W + L, NOW);
    s.applyWatermark(1, T0 + W + L, NOW);
    const d = s.drainChanges();
    assert.deepEqual(d.byAdvertiser.get('adv-1')?.map((r) => [r.windowStart, r.final]), [[T0, true]]);
  });

  it('final totals: closed windows only, exact as bigint', () => {
    const s = state(1);
    s.applyRow(row({ windowStart: T0, windowEnd: T0 + W, impressions: 3, spendMicros: 2n ** 52n }));
    s.applyRow(row({ windowStart: T0, windowEnd: T0 + W, campaignId: 'x', impressions: 4, spendMicros: 2n ** 52n }));
    s.applyRow(row({ windowStart: T0 + W, windowEnd: T0 + 2 * W, impressions: 5 }));
    assert.deepEqual(s.finalTotals(), { windows: 0, impressions: 0n, spendMicros: 0n, firstWindowStart: null, lastWindowStart: null });
    s.applyWatermark(0, T0 + W + L, NOW);
    assert.deepEqual(s.finalTotals(), { windows: 1, impressions: 7n, spendMicros: 2n ** 53n, firstWindowStart: T0, lastWindowStart: T0 });
    assert.equal(s.finalTotals(T0 + 2 * W + L).windows, 2);
    assert.equal(s.finalTotals(T0).windows, 0);
  });
});
