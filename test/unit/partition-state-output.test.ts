import assert from 'node:assert/strict';
import { decodeChunk, hashImpressionId, PERIOD_MS, type PartitionProgress } from '../../server/src/aggregator/core/index.js';
import { rowKey } from '../../server/src/contracts/count-record.js';
import { MIN, SETTINGS, T0, P, LATER, imp, newState, feed, drain, rowOf, advanceTo, periodStart, KafkaModel } from './partition-state-fixtures.js';

describe('PartitionState', () => {
  describe('drainChanges', () => {
    it('emits a changed row once per drain with version + 1, and unchanged rows not at all', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      feed(s, imp('b', T0 + 2));
      feed(s, imp('x', T0 + 3, 'adv-2'));
      let ch = drain(s);
      assert.deepEqual(ch.rows.map((r) => [r.advertiserId, r.version]), [['adv-1', 1], ['adv-2', 1]]);
      feed(s, imp('c', T0 + 4));
      feed(s, imp('d', T0 + 5));
      ch = drain(s);
      assert.deepEqual(ch.rows.map((r) => [r.advertiserId, r.version, r.impressions]), [['adv-1', 2, 4]]);
      ch = drain(s);
      assert.deepEqual(ch, { rows: [], dedupDeltas: [], evicted: [], closes: [], watermark: T0 + 5 - 5_000, sourceMark: null, progress: null });
    });

    it('emits snapshots: later processing does not change rows already drained', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      const first = drain(s).rows[0];
      feed(s, imp('b', T0 + 2));
      assert.equal(first.impressions, 1);
      assert.equal(first.version, 1);
    });

    it('writes each window\'s new ids as the next chunk, 0, 1, 2, …', () => {
      const s = newState();
      const ids1 = ['a', 'b', 'c'];
      for (const id of ids1) feed(s, imp(id, T0 + 1));
      feed(s, imp('z', T0 + MIN + 1));
      let ch = drain(s);
      assert.deepEqual(ch.dedupDeltas.map((d) => [d.windowStart, d.chunk, d.ids.length / 16]), [[T0, 0, 3], [T0 + MIN, 0, 1]]);
      assert.deepEqual(decodeChunk(ch.dedupDeltas[0].ids), ids1.map(hashImpressionId));

      for (let i = 0; i < 40; i++) feed(s, imp(`more-${i}`, T0 + 2)); // grows the pending buffer past its start size
      feed(s, imp('a', T0 + 3)); // duplicate: not in the delta
      ch = drain(s);
      assert.deepEqual(ch.dedupDeltas.map((d) => [d.windowStart, d.chunk, d.ids.length / 16]), [[T0, 1, 40]]);
      assert.deepEqual(decodeChunk(ch.dedupDeltas[0].ids), Array.from({ length: 40 }, (_, i) => hashImpressionId(`more-${i}`)));
      feed(s, imp('q', T0 + 4));
      assert.deepEqual(drain(s).dedupDeltas.map((d) => d.chunk), [2]);
    });

    it('hands over the progress record when something in it changed, and once per idle timeout', () => {
      const s = newState();
      feed(s, imp('a', T0 + 10_000));
      const p = drain(s).progress;
      assert.deepEqual(p, {
        watermark: T0 + 5_000, maxEventTime: T0 + 10_000, sourceWatermark: T0 + 5_000, inputs: [{ watermark: T0 + 5_000, idle: false, position: 0 }],
        closedThrough: T0 + 5_000 - 10_000, evictedBefore: T0 - 61 * MIN, periodsClosedBefore: periodStart(T0 - 61 * MIN),
        openPeriods: [], windowMs: MIN, partitions: 1,
      } satisfies PartitionProgress);
      assert.equal(drain(s).progress, null);
      assert.equal(drain(s, LATER, true).progress?.inputs[0].idle, true);
      assert.equal(drain(s, LATER + 9_999, true).progress, null);
      assert.equal(drain(s, LATER + 10_000, true).progress?.watermark, T0 + 5_000, 'a heartbeat');
    });
  });

  describe('final and revised', () => {
    const END = T0 + MIN;
    const CLOSE = END + SETTINGS.allowedLatenessMs;

    it('marks a row final once the watermark reaches windowEnd + allowedLateness, not a ms earlier', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      assert.equal(rowOf(advanceTo(s, CLOSE - 1, '1'), T0).final, false);
      feed(s, imp('b', T0 + 2));
      const row = rowOf(advanceTo(s, CLOSE, '2'), T0);
      assert.deepEqual([row.version, row.final, row.revised], [2, true, false]);
    });

    it('flags a late change after a final emission as revised', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      assert.equal(rowOf(advanceTo(s, CLOSE, '1'), T0).final, true);
      feed(s, imp('late', T0 + 3));
      let row = rowOf(drain(s), T0);
      assert.deepEqual([row.impressions, row.version, row.final, row.revised], [2, 2, true, true]);
      feed(s, imp('late', T0 + 3)); // a late duplicate is a revision too (duplicates changed)
      row = rowOf(drain(s), T0);
      assert.deepEqual([row.impressions, row.duplicates, row.version, row.revised], [2, 1, 3, true]);
    });

    it('a window that closed at this drain gives final, not revised', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      drain(s);
      feed(s, imp('b', T0 + 2));
      const row = rowOf(advanceTo(s, CLOSE + 100, '1'), T0);
      assert.deepEqual([row.final, row.revised], [true, false]);
    });

    it('a new row in a window already published as closed is revised', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      advanceTo(s, CLOSE, '1');
      feed(s, imp('new', T0 + 2, 'adv-9', 'cmp-9'));
      const row = rowOf(drain(s), T0, 'adv-9', 'cmp-9');
      assert.deepEqual([row.version, row.final, row.revised], [1, true, true]);
    });

    it('a window that became final without changing emits no row', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      drain(s);
      const ch = advanceTo(s, CLOSE, '1');
      assert.equal(ch.rows.some((r) => r.windowStart === T0 && r.advertiserId === 'adv-1'), false);
      assert.equal(ch.watermark, CLOSE);
    });
  });

  describe('too_late and eviction', () => {
    const HORIZON_END = T0 + MIN + SETTINGS.allowedLatenessMs + SETTINGS.dedupHorizonMs;

    it('still counts an event while watermark < windowEnd + lateness + horizon', () => {
      const s = newState();
      advanceTo(s, HORIZON_END - 1, '1');
      assert.equal(feed(s, imp('a', T0 + 1), HORIZON_END).kind, 'counted');
    });

    it('refuses it as too_late from watermark = windowEnd + lateness + horizon on, without touching state', () => {
      const s = newState();
      advanceTo(s, HORIZON_END, '1');
      const before = [s.windowsOpen, s.idsHeld, s.watermark, s.maxEventTime];
      const out = feed(s, imp('a', T0 + MIN - 1), HORIZON_END);
      assert.ok(out.kind === 'too_late');
      assert.match(out.detail, new RegExp(String(T0)));
      assert.deepEqual([s.windowsOpen, s.idsHeld, s.watermark, s.maxEventTime], before);
      assert.equal(feed(s, imp('b', T0 + MIN), HORIZON_END).kind, 'counted', 'the next window is still fine');
    });

    it('refuses a duplicate of an evicted window as too_late rather than counting it again', () => {
      const s = newState();
      const i = imp('a', T0 + 1);
      feed(s, i);
      drain(s);
      assert.equal(advanceTo(s, HORIZON_END, '1').evicted[0].windowStart, T0);
      assert.equal(feed(s, i, HORIZON_END).kind, 'too_late');
    });

    it('retires windows at windowEnd + lateness + horizon (chunks tombstoned), keeping their rows frozen until their period closes', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1, 'adv-1', 'cmp-1'));
      feed(s, imp('b', T0 + 2, 'adv-2', 'cmp-1'));
      drain(s);
      feed(s, imp('c', T0 + 3, 'adv-1', 'cmp-2'));
      drain(s);
      feed(s, imp('d', T0 + MIN + 1));
      drain(s);
      assert.deepEqual([s.windowsOpen, s.idsHeld], [2, 4]);
      assert.deepEqual(advanceTo(s, HORIZON_END - 1, 'w1').evicted, [], 'one ms before the horizon nothing goes');
      const ch = advanceTo(s, HORIZON_END, 'w2');
      assert.deepEqual(ch.evicted, [{ windowStart: T0, chunks: 2 }]);
      assert.equal(ch.rows.some((r) => r.windowStart === T0), false);
      assert.equal(s.windowsOpen, 3, 'T0 stays (frozen), with T0+MIN and the side events\' window');
      assert.equal(s.idsHeld, 3, 'its ids are forgotten');
      assert.equal(feed(s, imp('late', T0 + 5), HORIZON_END).kind, 'too_late', 'frozen: nothing changes it');
    });

    it('keeps a window that changed since the last drain one drain longer, so its change is written before its tombstones', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      advanceTo(s, HORIZON_END - 1, '1');
      feed(s, imp('b', T0 + 2), HORIZON_END); // still in time
      let ch = advanceTo(s, HORIZON_END, '2'); // now the window is past its horizon
      assert.deepEqual(ch.evicted, []);
      assert.equal(rowOf(ch, T0).impressions, 2);
      assert.deepEqual(ch.dedupDeltas.filter((d) => d.windowStart === T0).map((d) => d.chunk), [1]);
      assert.equal(feed(s, imp('c', T0 + 3), HORIZON_END).kind, 'too_late', 'no further change is accepted meanwhile');
      ch = drain(s);
      assert.deepEqual(ch.evicted, [{ windowStart: T0, chunks: 2 }]);
      assert.deepEqual(ch.rows, []);
    });
  });

  describe('billing periods', () => {
    const H = periodStart(T0) + PERIOD_MS; // a period start after T0
    const RETENTION = MIN + SETTINGS.allowedLatenessMs + SETTINGS.dedupHorizonMs;
    const src = (offset: number) => ({ input: 'source' as const, offset });
    const chan = (offset: number) => ({ input: 'channel' as const, offset });

    it('closes an hour once every window of it passed the horizon: rows summed per campaign, lineage, its window rows settled', () => {
      const s = newState();
      s.process(imp('a', H + 1, 'adv-1', 'cmp-1', 100), hashImpressionId('a'), H + 1, src(10));
      s.process(imp('b', H + 30 * MIN, 'adv-1', 'cmp-1', 200), hashImpressionId('b'), H + 30 * MIN, chan(4));
      s.process(imp('c', H + 59 * MIN, 'adv-2', 'cmp-9', 300), hashImpressionId('c'), H + 59 * MIN, src(12));
      s.process(imp('a', H + 2, 'adv-1', 'cmp-1', 100), hashImpressionId('a'), H + 2, src(13)); // a duplicate
      s.process(imp('d', H + PERIOD_MS + 1, 'adv-1', 'cmp-1', 1), hashImpressionId('d'), H + PERIOD_MS + 1, src(14)); // next hour
      // The last window of H is retired when the watermark passes its start + retention.
      const lastWindow = H + PERIOD_MS - MIN;
      let ch = advanceTo(s, lastWindow + RETENTION - 1, 'x');
      assert.deepEqual(ch.closes, [], 'one ms early');
      ch = advanceTo(s, lastWindow + RETENTION, 'y');
      assert.equal(ch.closes.length, 1);
      const close = ch.closes[0];
      assert.deepEqual({ ...close, rowKeys: [...close.rowKeys].sort() }, {
        periodStart: H,
        rows: [
          { advertiserId: 'adv-1', campaignId: 'cmp-1', impressions: 2, spendMicros: 300n, duplicates: 1 },
          { advertiserId: 'adv-2', campaignId: 'cmp-9', impressions: 1, spendMicros: 300n, duplicates: 0 },
        ],
        late: [],
        rowKeys: [rowKey(H, 'adv-1', 'cmp-1', P), rowKey(H + 30 * MIN, 'adv-1', 'cmp-1', P), rowKey(H + 59 * MIN, 'adv-2', 'cmp-9', P)].sort(),
        watermark: lastWindow + RETENTION,
        firstSourceOffset: 10,
        firstChannelOffset: 4,
      });
      assert.equal(ch.progress?.periodsClosedBefore, H + PERIOD_MS);
      assert.deepEqual(ch.progress?.openPeriods.map((o) => [o.periodStart, o.firstSourceOffset]), [[H + PERIOD_MS, 14]]);
      assert.equal(feed(s, imp('e', H + 5)).kind, 'too_late');
    });

    it('reports a too-late event in the period it arrived in (the watermark\'s), never in its own, closed one', () => {
      const s = newState();
      feed(s, imp('a', H + 1));
      const wm = H + PERIOD_MS + RETENTION; // H closed
      advanceTo(s, wm, 'x');
      assert.equal(feed(s, imp('late-1', H + 10, 'adv-7')).kind, 'too_late');
      assert.equal(feed(s, imp('late-2', H + 20, 'adv-7')).kind, 'too_late');
      assert.equal(feed(s, imp('late-3', H - 2 * PERIOD_MS, 'adv-7')).kind, 'too_late');
      const arrival = periodStart(wm);
      const p = drain(s).progress;
      assert.deepEqual(p?.openPeriods.find((o) => o.periodStart === arrival)?.late, [
        { advertiserId: 'adv-7', originalPeriodStart: H, events: 2 },
        { advertiserId: 'adv-7', originalPeriodStart: H - 2 * PERIOD_MS, events: 1 },
      ]);
      const ch = advanceTo(s, arrival + PERIOD_MS + RETENTION, 'y');
      const close = ch.closes.find((c) => c.periodStart === arrival);
      assert.deepEqual(close?.late.map((l) => [l.originalPeriodStart, l.events]), [[H - 2 * PERIOD_MS, 1], [H, 2]]);
    });

    it('closes every hour in turn, empty ones too, from the first one its watermark passed; a restore continues where it was', () => {
      const s = newState();
      const kafka = new KafkaModel();
      feed(s, imp('a', H + 1));
      kafka.write(drain(s, H + 1));
      const ch = advanceTo(s, H + 5 * PERIOD_MS + RETENTION, 'x');
      kafka.write(ch);
      // The first drain's watermark (H − 5 s) already passed the horizon of H − 2 h: closing starts there.
      assert.deepEqual(ch.closes.map((c) => (c.periodStart - H) / PERIOD_MS), [-2, -1, 0, 1, 2, 3, 4]);
      assert.deepEqual(ch.closes.map((c) => c.rows.length), [0, 0, 1, 0, 0, 0, 0]);
      const again = newState();
      kafka.restoreInto(again);
      assert.deepEqual(advanceTo(again, H + 6 * PERIOD_MS + RETENTION, 'y').closes.map((c) => (c.periodStart - H) / PERIOD_MS), [5]);
    });
  });

});
