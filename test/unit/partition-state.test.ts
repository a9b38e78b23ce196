import assert from 'node:assert/strict';
import type { Impression } from '../../server/src/impression/index.js';
import {
  DedupSet, hashImpressionId, PartitionState, rowKey,
  type Changes, type ProcessOutcome, type WindowRow, type WindowSettings,
} from '../../server/src/aggregator/core/index.js';

const MIN = 60_000;
const SETTINGS: WindowSettings = {
  windowMs: MIN,
  outOfOrdernessMs: 5_000,
  allowedLatenessMs: 10_000,
  dedupHorizonMs: 3_600_000,
  maxClockSkewMs: 300_000,
};
/** A window start (multiple of 60 s). */
const T0 = 1_764_150_000_000;
const P = 3;

function imp(impressionId: string, ts: number, advertiserId = 'adv-1', campaignId = 'cmp-1', costMicros = 100): Impression {
  return { impressionId, ts, advertiserId, campaignId, costMicros };
}

function feed(state: PartitionState, i: Impression, nowMs = i.ts): ProcessOutcome {
  return state.process(i, hashImpressionId(i.impressionId), nowMs);
}

function rowOf(changes: Changes, windowStart: number, advertiserId = 'adv-1', campaignId = 'cmp-1'): WindowRow {
  const row = changes.rows.find((r) => r.windowStart === windowStart && r.advertiserId === advertiserId && r.campaignId === campaignId);
  assert.ok(row, `no row for ${windowStart}/${advertiserId}/${campaignId} in ${JSON.stringify(changes.rows)}`);
  return row;
}

/** Moves the watermark to exactly `wm` with an event in a side campaign (not counted in adv-1/cmp-1 rows). */
function pushWatermark(state: PartitionState, wm: number, tag: string): void {
  feed(state, imp(`wm-${tag}`, wm + SETTINGS.outOfOrdernessMs, 'adv-wm', 'cmp-wm'));
  assert.equal(state.watermark, wm);
}

describe('PartitionState', () => {
  describe('counting', () => {
    it('counts new impressions into one row per (window, advertiser, campaign)', () => {
      const s = new PartitionState(P, SETTINGS);
      assert.equal(feed(s, imp('a', T0 + 1, 'adv-1', 'cmp-1', 100)).kind, 'counted');
      feed(s, imp('b', T0 + 59_999, 'adv-1', 'cmp-1', 250));
      feed(s, imp('c', T0 + 2, 'adv-1', 'cmp-2', 7));
      feed(s, imp('d', T0 + 3, 'adv-2', 'cmp-1', 9));
      feed(s, imp('e', T0 + MIN, 'adv-1', 'cmp-1', 1)); // first ms of the next window
      const ch = s.drainChanges();
      assert.equal(ch.rows.length, 4);
      assert.deepEqual(rowOf(ch, T0), {
        windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: P,
        impressions: 2, spendMicros: 350, duplicates: 0, version: 1, final: false, revised: false,
      });
      assert.equal(rowOf(ch, T0, 'adv-1', 'cmp-2').spendMicros, 7);
      assert.equal(rowOf(ch, T0, 'adv-2', 'cmp-1').impressions, 1);
      assert.equal(rowOf(ch, T0 + MIN).impressions, 1);
      assert.equal(s.windowsOpen, 2);
      assert.equal(s.idsHeld, 5);
    });

    it('returns the live row with the event included', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      const out = feed(s, imp('b', T0 + 2));
      assert.equal(out.kind, 'counted');
      assert.ok(out.kind === 'counted');
      assert.equal(out.row.impressions, 2);
    });

    it('works with 1 s windows', () => {
      const s = new PartitionState(P, { ...SETTINGS, windowMs: 1000, outOfOrdernessMs: 200, allowedLatenessMs: 300, dedupHorizonMs: 2000 });
      for (let i = 0; i < 30; i++) feed(s, imp(`i${i}`, T0 + i * 100));
      const ch = s.drainChanges();
      assert.deepEqual(ch.rows.map((r) => [r.windowStart, r.windowEnd, r.impressions]), [
        [T0, T0 + 1000, 10], [T0 + 1000, T0 + 2000, 10], [T0 + 2000, T0 + 3000, 10],
      ]);
      assert.equal(ch.watermark, T0 + 2900 - 200);
      // T0 window closes at T0 + 1000 + 300 ≤ watermark 2700 → final; T0+1000 closes at 2300 → final; T0+2000 not.
      assert.deepEqual(ch.rows.map((r) => r.final), [true, true, false]);
    });
  });

  describe('watermark', () => {
    it('starts at 0 and is max event time − out-of-orderness', () => {
      const s = new PartitionState(P, SETTINGS);
      assert.equal(s.watermark, 0);
      assert.equal(s.maxEventTime, 0);
      feed(s, imp('a', T0 + 10_000));
      assert.equal(s.watermark, T0 + 5_000);
      assert.equal(s.maxEventTime, T0 + 10_000);
    });

    it('never goes back when an older event arrives', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 30_000));
      feed(s, imp('b', T0 + 1_000));
      assert.equal(s.watermark, T0 + 25_000);
      assert.equal(s.maxEventTime, T0 + 30_000);
      assert.equal(s.drainChanges().watermark, T0 + 25_000);
    });

    it('is moved by duplicates too (they are valid events)', () => {
      const s = new PartitionState(P, SETTINGS);
      const i = imp('a', T0 + 30_000);
      feed(s, i, T0);
      assert.equal(feed(s, i).kind, 'duplicate');
      assert.equal(s.watermark, T0 + 25_000);
    });
  });

  describe('duplicates', () => {
    it('counts an id once per window within one drain, and counts the duplicates', () => {
      const s = new PartitionState(P, SETTINGS);
      const i = imp('a', T0 + 5, 'adv-1', 'cmp-1', 1000);
      assert.equal(feed(s, i).kind, 'counted');
      assert.equal(feed(s, i).kind, 'duplicate');
      assert.equal(feed(s, i).kind, 'duplicate');
      const ch = s.drainChanges();
      assert.equal(ch.rows.length, 1);
      assert.deepEqual([ch.rows[0].impressions, ch.rows[0].spendMicros, ch.rows[0].duplicates, ch.rows[0].version], [1, 1000, 2, 1]);
      assert.equal(ch.dedupDeltas.length, 1);
      assert.equal(ch.dedupDeltas[0].ids.length, 16);
    });

    it('recognises a duplicate in a later drain and emits the row again with only duplicates changed', () => {
      const s = new PartitionState(P, SETTINGS);
      const i = imp('a', T0 + 5);
      feed(s, i);
      s.drainChanges();
      assert.equal(feed(s, i).kind, 'duplicate');
      const ch = s.drainChanges();
      assert.equal(ch.rows.length, 1);
      assert.deepEqual([ch.rows[0].impressions, ch.rows[0].duplicates, ch.rows[0].version], [1, 1, 2]);
      assert.deepEqual(ch.dedupDeltas, [], 'no new id, no changelog chunk');
    });

    it('treats the same id in another campaign of the same window as a duplicate (the id is what is deduplicated)', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 5, 'adv-1', 'cmp-1'));
      const out = feed(s, imp('a', T0 + 5, 'adv-1', 'cmp-2'));
      assert.equal(out.kind, 'duplicate');
      const ch = s.drainChanges();
      assert.equal(rowOf(ch, T0, 'adv-1', 'cmp-2').impressions, 0);
      assert.equal(rowOf(ch, T0, 'adv-1', 'cmp-2').duplicates, 1);
    });

    it('keeps separate dedup sets per window', () => {
      const s = new PartitionState(P, SETTINGS);
      assert.equal(feed(s, imp('a', T0 + 5)).kind, 'counted');
      assert.equal(feed(s, imp('a', T0 + MIN + 5)).kind, 'counted');
      assert.equal(s.idsHeld, 2);
    });
  });

  describe('drainChanges', () => {
    it('emits a changed row once per drain with version + 1, and unchanged rows not at all', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      feed(s, imp('b', T0 + 2));
      feed(s, imp('x', T0 + 3, 'adv-2'));
      let ch = s.drainChanges();
      assert.deepEqual(ch.rows.map((r) => [r.advertiserId, r.version]), [['adv-1', 1], ['adv-2', 1]]);
      feed(s, imp('c', T0 + 4));
      feed(s, imp('d', T0 + 5));
      ch = s.drainChanges();
      assert.deepEqual(ch.rows.map((r) => [r.advertiserId, r.version, r.impressions]), [['adv-1', 2, 4]]);
      ch = s.drainChanges();
      assert.deepEqual(ch, { rows: [], dedupDeltas: [], evicted: [], watermark: T0 + 5 - 5_000 });
      assert.equal(s.hasPendingChanges, false);
    });

    it('emits snapshots: later processing does not change rows already drained', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      const first = s.drainChanges().rows[0];
      feed(s, imp('b', T0 + 2));
      assert.equal(first.impressions, 1);
      assert.equal(first.version, 1);
    });

    it('writes each window’s new ids as the next chunk, 0, 1, 2, …', () => {
      const s = new PartitionState(P, SETTINGS);
      const ids1 = ['a', 'b', 'c'];
      for (const id of ids1) feed(s, imp(id, T0 + 1));
      feed(s, imp('z', T0 + MIN + 1));
      let ch = s.drainChanges();
      assert.deepEqual(ch.dedupDeltas.map((d) => [d.windowStart, d.chunk, d.ids.length / 16]), [[T0, 0, 3], [T0 + MIN, 0, 1]]);
      assert.deepEqual(DedupSet.decodeChunk(ch.dedupDeltas[0].ids), ids1.map(hashImpressionId));

      for (let i = 0; i < 40; i++) feed(s, imp(`more-${i}`, T0 + 2)); // grows the pending buffer past its start size
      feed(s, imp('a', T0 + 3)); // duplicate: not in the delta
      ch = s.drainChanges();
      assert.deepEqual(ch.dedupDeltas.map((d) => [d.windowStart, d.chunk, d.ids.length / 16]), [[T0, 1, 40]]);
      assert.deepEqual(DedupSet.decodeChunk(ch.dedupDeltas[0].ids), Array.from({ length: 40 }, (_, i) => hashImpressionId(`more-${i}`)));

      feed(s, imp('q', T0 + 4));
      assert.deepEqual(s.drainChanges().dedupDeltas.map((d) => d.chunk), [2]);
    });
  });

  describe('final and revised', () => {
    const END = T0 + MIN;
    const CLOSE = END + SETTINGS.allowedLatenessMs;

    it('marks a row final once the watermark reaches windowEnd + allowedLateness, not a ms earlier', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      pushWatermark(s, CLOSE - 1, '1');
      let row = rowOf(s.drainChanges(), T0);
      assert.equal(row.final, false);
      feed(s, imp('b', T0 + 2));
      pushWatermark(s, CLOSE, '2');
      row = rowOf(s.drainChanges(), T0);
      assert.deepEqual([row.version, row.final, row.revised], [2, true, false]);
    });

    it('flags a late change after a final emission as revised', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      pushWatermark(s, CLOSE, '1');
      assert.equal(rowOf(s.drainChanges(), T0).final, true);
      feed(s, imp('late', T0 + 3));
      let row = rowOf(s.drainChanges(), T0);
      assert.deepEqual([row.impressions, row.version, row.final, row.revised], [2, 2, true, true]);
      feed(s, imp('late', T0 + 3)); // a late duplicate is a revision too (duplicates changed)
      row = rowOf(s.drainChanges(), T0);
      assert.deepEqual([row.impressions, row.duplicates, row.version, row.revised], [2, 1, 3, true]);
    });

    it('a window that closed since the last drain gives final, not revised', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      s.drainChanges();
      pushWatermark(s, CLOSE + 100, '1');
      feed(s, imp('b', T0 + 2)); // late, but downstream has not been told the window closed yet
      const row = rowOf(s.drainChanges(), T0);
      assert.deepEqual([row.final, row.revised], [true, false]);
    });

    it('a new row in a window already published as closed is revised', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      pushWatermark(s, CLOSE, '1');
      s.drainChanges();
      feed(s, imp('new', T0 + 2, 'adv-9', 'cmp-9'));
      const row = rowOf(s.drainChanges(), T0, 'adv-9', 'cmp-9');
      assert.deepEqual([row.version, row.final, row.revised], [1, true, true]);
    });

    it('a window that became final without changing emits no row', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      s.drainChanges();
      pushWatermark(s, CLOSE, '1');
      const ch = s.drainChanges();
      assert.equal(ch.rows.some((r) => r.windowStart === T0 && r.advertiserId === 'adv-1'), false);
      assert.equal(ch.watermark, CLOSE);
    });
  });

  describe('too_late and eviction', () => {
    const HORIZON_END = T0 + MIN + SETTINGS.allowedLatenessMs + SETTINGS.dedupHorizonMs;

    it('still counts an event while watermark < windowEnd + lateness + horizon', () => {
      const s = new PartitionState(P, SETTINGS);
      pushWatermark(s, HORIZON_END - 1, '1');
      const out = feed(s, imp('a', T0 + 1), HORIZON_END);
      assert.equal(out.kind, 'counted');
    });

    it('refuses it as too_late from watermark = windowEnd + lateness + horizon on, without touching state', () => {
      const s = new PartitionState(P, SETTINGS);
      pushWatermark(s, HORIZON_END, '1');
      const before = [s.windowsOpen, s.idsHeld, s.watermark, s.maxEventTime];
      const out = feed(s, imp('a', T0 + MIN - 1), HORIZON_END);
      assert.equal(out.kind, 'too_late');
      assert.ok(out.kind === 'too_late');
      assert.match(out.detail, new RegExp(String(T0)));
      assert.deepEqual([s.windowsOpen, s.idsHeld, s.watermark, s.maxEventTime], before);
      // the next window is still fine
      assert.equal(feed(s, imp('b', T0 + MIN), HORIZON_END).kind, 'counted');
    });

    it('refuses a duplicate of an evicted window as too_late rather than counting it again', () => {
      const s = new PartitionState(P, SETTINGS);
      const i = imp('a', T0 + 1);
      feed(s, i);
      s.drainChanges();
      pushWatermark(s, HORIZON_END, '1');
      assert.equal(s.drainChanges().evicted[0].windowStart, T0);
      assert.equal(feed(s, i, HORIZON_END).kind, 'too_late');
    });

    it('evicts windows at windowEnd + lateness + horizon, listing all their row keys and chunk count', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1, 'adv-1', 'cmp-1'));
      feed(s, imp('b', T0 + 2, 'adv-2', 'cmp-1'));
      s.drainChanges();
      feed(s, imp('c', T0 + 3, 'adv-1', 'cmp-2'));
      s.drainChanges();
      feed(s, imp('d', T0 + MIN + 1));
      s.drainChanges();
      assert.equal(s.windowsOpen, 2);
      assert.equal(s.idsHeld, 4);

      feed(s, imp('w', HORIZON_END - 1 + SETTINGS.outOfOrdernessMs, 'adv-wm', 'cmp-wm'));
      let ch = s.drainChanges();
      assert.deepEqual(ch.evicted, [], 'one ms before the horizon nothing goes');

      feed(s, imp('w2', HORIZON_END + SETTINGS.outOfOrdernessMs, 'adv-wm', 'cmp-wm'));
      ch = s.drainChanges();
      assert.deepEqual(ch.evicted.map((e) => ({ ...e, rowKeys: [...e.rowKeys].sort() })), [{
        windowStart: T0,
        rowKeys: [rowKey(T0, 'adv-1', 'cmp-1', P), rowKey(T0, 'adv-1', 'cmp-2', P), rowKey(T0, 'adv-2', 'cmp-1', P)].sort(),
        chunks: 2,
      }]);
      assert.equal(ch.rows.some((r) => r.windowStart === T0), false);
      assert.equal(s.windowsOpen, 2, 'T0+MIN and the watermark events\' window remain');
      assert.equal(s.idsHeld, 3);
    });

    it('keeps a window that changed since the last drain one drain longer, so its change is written before its tombstones', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      s.drainChanges();
      pushWatermark(s, HORIZON_END - 1, '1');
      feed(s, imp('b', T0 + 2), HORIZON_END); // still in time
      pushWatermark(s, HORIZON_END, '2'); // now the window is past its horizon
      let ch = s.drainChanges();
      assert.deepEqual(ch.evicted, []);
      assert.equal(rowOf(ch, T0).impressions, 2);
      assert.deepEqual(ch.dedupDeltas.filter((d) => d.windowStart === T0).map((d) => d.chunk), [1]);
      assert.equal(feed(s, imp('c', T0 + 3), HORIZON_END).kind, 'too_late', 'no further change is accepted meanwhile');
      ch = s.drainChanges();
      assert.deepEqual(ch.evicted, [{ windowStart: T0, rowKeys: [rowKey(T0, 'adv-1', 'cmp-1', P)], chunks: 2 }]);
      assert.deepEqual(ch.rows, []);
    });
  });

  describe('future_timestamp', () => {
    it('accepts up to maxClockSkewMs ahead of the clock and refuses one ms more, leaving the watermark alone', () => {
      const s = new PartitionState(P, SETTINGS);
      const now = T0;
      assert.equal(feed(s, imp('ok', now + SETTINGS.maxClockSkewMs), now).kind, 'counted');
      const wm = s.watermark;
      const out = feed(s, imp('ahead', now + SETTINGS.maxClockSkewMs + MIN * 10), now);
      assert.equal(out.kind, 'future_timestamp');
      assert.equal(feed(s, imp('ahead2', now + SETTINGS.maxClockSkewMs + 1), now).kind, 'future_timestamp');
      assert.equal(s.watermark, wm);
      assert.equal(s.maxEventTime, now + SETTINGS.maxClockSkewMs);
      assert.equal(s.idsHeld, 1);
    });
  });

  describe('advanceIdle', () => {
    it('moves the watermark to now − outOfOrderness, never back, and leaves maxEventTime alone', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      s.advanceIdle(T0 + 100_000);
      assert.equal(s.watermark, T0 + 100_000 - SETTINGS.outOfOrdernessMs);
      assert.equal(s.maxEventTime, T0 + 1);
      s.advanceIdle(T0 + 50_000);
      assert.equal(s.watermark, T0 + 95_000);
      feed(s, imp('b', T0 + 60_000));
      assert.equal(s.watermark, T0 + 95_000, 'an older event does not pull it back');
    });

    it('lets an idle partition close and evict windows by wall clock', () => {
      const s = new PartitionState(P, SETTINGS);
      feed(s, imp('a', T0 + 1));
      s.drainChanges();
      const close = T0 + MIN + SETTINGS.allowedLatenessMs;
      s.advanceIdle(close + SETTINGS.outOfOrdernessMs);
      assert.equal(s.drainChanges().watermark, close);
      feed(s, imp('late', T0 + 2), close + SETTINGS.outOfOrdernessMs);
      const row = rowOf(s.drainChanges(), T0);
      assert.deepEqual([row.final, row.revised], [true, true]);
      s.advanceIdle(close + SETTINGS.dedupHorizonMs + SETTINGS.outOfOrdernessMs);
      assert.deepEqual(s.drainChanges().evicted.map((e) => e.windowStart), [T0]);
      assert.equal(s.windowsOpen, 0);
    });
  });

  describe('restore', () => {
    it('restoreRow keeps the highest version per key, in any order, and leaves nothing pending', () => {
      const s = new PartitionState(P, SETTINGS);
      const base: WindowRow = {
        windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: P,
        impressions: 5, spendMicros: 500, duplicates: 1, version: 3, final: false, revised: false,
      };
      s.restoreRow(base);
      s.restoreRow({ ...base, impressions: 4, version: 2 });
      s.restoreRow({ ...base, impressions: 6, version: 4 });
      s.restoreRow({ ...base, impressions: 1, version: 1 });
      assert.deepEqual(s.drainChanges().rows, []);
      s.restoreDedupChunk(T0, 0, DedupSet.encodeChunk([hashImpressionId('x')]));
      feed(s, imp('new', T0 + 1, 'adv-1', 'cmp-1', 10));
      const row = rowOf(s.drainChanges(), T0);
      assert.deepEqual([row.impressions, row.spendMicros, row.duplicates, row.version], [7, 510, 1, 5]);
    });

    it('restored ids are duplicates; chunk numbers continue after the highest restored', () => {
      const s = new PartitionState(P, SETTINGS);
      s.restoreDedupChunk(T0, 0, DedupSet.encodeChunk([hashImpressionId('a')]));
      s.restoreDedupChunk(T0, 4, DedupSet.encodeChunk([hashImpressionId('b'), hashImpressionId('c')]));
      s.restoreDedupChunk(T0, 2, DedupSet.encodeChunk([hashImpressionId('d')]));
      assert.equal(s.idsHeld, 4);
      assert.equal(feed(s, imp('c', T0 + 1)).kind, 'duplicate');
      assert.equal(feed(s, imp('e', T0 + 1)).kind, 'counted');
      assert.deepEqual(s.drainChanges().dedupDeltas.map((d) => [d.windowStart, d.chunk]), [[T0, 5]]);
    });

    it('restoreWatermark recomputes from maxEventTime, or keeps a published watermark that was ahead of it', () => {
      const s = new PartitionState(P, SETTINGS);
      s.restoreWatermark(T0 + 10_000);
      assert.deepEqual([s.maxEventTime, s.watermark], [T0 + 10_000, T0 + 5_000]);
      const idle = new PartitionState(P, SETTINGS);
      idle.restoreWatermark(T0 + 10_000, T0 + 90_000);
      assert.deepEqual([idle.maxEventTime, idle.watermark], [T0 + 10_000, T0 + 90_000]);
      assert.deepEqual(idle.drainChanges(), { rows: [], dedupDeltas: [], evicted: [], watermark: T0 + 90_000 });
    });

    it('after a restore, a late change to a window closed before the crash is revised', () => {
      const s = new PartitionState(P, SETTINGS);
      s.restoreRow({
        windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: P,
        impressions: 1, spendMicros: 100, duplicates: 0, version: 2, final: true, revised: false,
      });
      s.restoreDedupChunk(T0, 0, DedupSet.encodeChunk([hashImpressionId('a')]));
      s.restoreWatermark(T0 + MIN + SETTINGS.allowedLatenessMs + SETTINGS.outOfOrdernessMs);
      feed(s, imp('late', T0 + 2), T0 + 2 * MIN);
      const row = rowOf(s.drainChanges(), T0);
      assert.deepEqual([row.impressions, row.version, row.final, row.revised], [2, 3, true, true]);
    });

    it('refuses rows of another partition or another window size', () => {
      const s = new PartitionState(P, SETTINGS);
      const row: WindowRow = {
        windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'a', campaignId: 'c', sourcePartition: P,
        impressions: 1, spendMicros: 0, duplicates: 0, version: 1, final: false, revised: false,
      };
      assert.throws(() => s.restoreRow({ ...row, sourcePartition: P + 1 }), /partition/);
      assert.throws(() => s.restoreRow({ ...row, windowEnd: T0 + 30_000 }), /windowMs/);
      assert.throws(() => s.restoreRow({ ...row, windowStart: T0 + 1, windowEnd: T0 + 1 + MIN }), /windowMs/);
      assert.throws(() => s.restoreDedupChunk(T0 + 1000, 0, new Uint8Array(0)), /windowMs/);
    });

    it('restore-then-continue gives exactly what uninterrupted processing gives', () => {
      const settings: WindowSettings = { windowMs: 1000, outOfOrdernessMs: 500, allowedLatenessMs: 1000, dedupHorizonMs: 5000, maxClockSkewMs: 2000 };
      const events = scenario(4000, 42);
      const half = 2000;

      // Uninterrupted: A then B, draining every 50 events.
      const whole = new PartitionState(P, settings);
      const wholeA = run(whole, events.slice(0, half));
      const wholeB = run(whole, events.slice(half));

      // Crash after A: everything A's drains committed, read back as restore would read it.
      const first = new PartitionState(P, settings);
      const firstA = run(first, events.slice(0, half));
      assert.deepEqual(firstA.drains, wholeA.drains);
      const kafka = new KafkaModel();
      for (const ch of firstA.drains) kafka.write(ch, first.maxEventTime);
      const restored = new PartitionState(P, settings);
      kafka.restoreInto(restored);
      assert.deepEqual(restored.drainChanges(), { rows: [], dedupDeltas: [], evicted: [], watermark: first.watermark }, 'restored state is already committed');
      assert.deepEqual(
        [restored.watermark, restored.maxEventTime, restored.windowsOpen, restored.idsHeld],
        [first.watermark, first.maxEventTime, first.windowsOpen, first.idsHeld],
      );

      const restoredB = run(restored, events.slice(half));
      assert.deepEqual(restoredB.outcomes, wholeB.outcomes);
      assert.deepEqual(restoredB.drains, wholeB.drains);

      // The scenario exercises what it claims to.
      const all = [...wholeA.outcomes, ...wholeB.outcomes];
      for (const kind of ['counted', 'duplicate', 'too_late']) assert.ok(all.includes(kind), `scenario has no ${kind}`);
      assert.ok(wholeB.drains.some((d) => d.evicted.length > 0), 'scenario evicts in B');
      assert.ok(wholeB.drains.some((d) => d.rows.some((r) => r.revised)), 'scenario revises in B');
      const keysOfA = new Set(wholeA.drains.flatMap((d) => d.rows.map((r) => rowKey(r.windowStart, r.advertiserId, r.campaignId, P))));
      const changedAgain = wholeB.drains.flatMap((d) => d.rows).filter((r) => keysOfA.has(rowKey(r.windowStart, r.advertiserId, r.campaignId, P)));
      assert.ok(changedAgain.length > 0, 'B changes rows restored from A');

      // And the final picture equals a single compacted view of everything written.
      const viewWhole = new KafkaModel();
      for (const ch of [...wholeA.drains, ...wholeB.drains]) viewWhole.write(ch, whole.maxEventTime);
      const viewRestored = new KafkaModel();
      for (const ch of [...firstA.drains, ...restoredB.drains]) viewRestored.write(ch, restored.maxEventTime);
      assert.deepEqual(viewRestored.snapshot(), viewWhole.snapshot());
    });
  });

  describe('gauges and settings', () => {
    it('reports windows open, ids held and dedup bytes', () => {
      const s = new PartitionState(P, SETTINGS);
      assert.deepEqual([s.windowsOpen, s.idsHeld, s.dedupBytes], [0, 0, 0]);
      for (let i = 0; i < 1000; i++) feed(s, imp(`id-${i}`, T0 + (i % 3) * MIN + 1));
      feed(s, imp('id-1', T0 + MIN + 1));
      assert.equal(s.windowsOpen, 3);
      assert.equal(s.idsHeld, 1000);
      assert.ok(s.dedupBytes >= 1000 * 16 && s.dedupBytes <= 1000 * 32 + 3 * 64 * 16, String(s.dedupBytes));
    });

    it('refuses nonsensical settings', () => {
      assert.throws(() => new PartitionState(P, { ...SETTINGS, windowMs: 0 }), RangeError);
      assert.throws(() => new PartitionState(P, { ...SETTINGS, windowMs: 1.5 }), RangeError);
      assert.throws(() => new PartitionState(P, { ...SETTINGS, allowedLatenessMs: -1 }), RangeError);
      assert.throws(() => new PartitionState(P, { ...SETTINGS, dedupHorizonMs: Number.NaN }), RangeError);
    });
  });
});

// ── helpers for the restore equivalence test ────────────────────────────────────────────────────

interface Event {
  imp: Impression;
  now: number;
}

/** Mostly advancing event times (5 ms steps), with late events (some beyond the horizon) and replays. */
function scenario(n: number, seed: number): Event[] {
  let s = seed;
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  const events: Event[] = [];
  let clock = T0;
  for (let i = 0; i < n; i++) {
    clock += 5;
    const r = rand();
    if (r < 0.15 && events.length > 0) {
      // a producer retry: the same event again, possibly much later
      const back = events[Math.floor(rand() * events.length)].imp;
      events.push({ imp: back, now: clock });
    } else {
      const lag = r < 0.25 ? Math.floor(rand() * 9000) : Math.floor(rand() * 300);
      const ts = Math.max(1, clock - lag);
      const adv = `adv-${Math.floor(rand() * 3)}`;
      const cmp = `cmp-${Math.floor(rand() * 2)}`;
      events.push({ imp: imp(`imp-${i}`, ts, adv, cmp, Math.floor(rand() * 5000)), now: clock });
    }
  }
  return events;
}

function run(state: PartitionState, events: Event[]): { outcomes: string[]; drains: Changes[] } {
  const outcomes: string[] = [];
  const drains: Changes[] = [];
  events.forEach((e, i) => {
    outcomes.push(state.process(e.imp, hashImpressionId(e.imp.impressionId), e.now).kind);
    if (i % 50 === 49) drains.push(copyChanges(state.drainChanges()));
  });
  drains.push(copyChanges(state.drainChanges()));
  return { outcomes, drains };
}

/** Deep copy with id chunks as plain arrays, so deepEqual compares contents. */
function copyChanges(ch: Changes): Changes {
  return {
    rows: ch.rows.map((r) => ({ ...r })),
    dedupDeltas: ch.dedupDeltas.map((d) => ({ ...d, ids: Uint8Array.from(d.ids) })),
    evicted: ch.evicted.map((e) => ({ ...e, rowKeys: [...e.rowKeys] })),
    watermark: ch.watermark,
  };
}

/** What the compacted impression-counts and changelog partitions hold after a series of drains. */
class KafkaModel {
  private rows = new Map<string, WindowRow>();
  private chunks = new Map<string, Uint8Array>();
  private watermark = { watermark: 0, maxEventTime: 0 };

  write(ch: Changes, maxEventTime: number): void {
    for (const r of ch.rows) this.rows.set(rowKey(r.windowStart, r.advertiserId, r.campaignId, r.sourcePartition), { ...r });
    for (const d of ch.dedupDeltas) this.chunks.set(`${d.windowStart}:${d.chunk}`, Uint8Array.from(d.ids));
    for (const e of ch.evicted) {
      for (const k of e.rowKeys) this.rows.delete(k);
      for (let c = 0; c < e.chunks; c++) this.chunks.delete(`${e.windowStart}:${c}`);
    }
    this.watermark = { watermark: ch.watermark, maxEventTime };
  }

  restoreInto(state: PartitionState): void {
    for (const r of this.rows.values()) state.restoreRow(r);
    for (const [key, ids] of this.chunks) {
      const [ws, c] = key.split(':').map(Number);
      state.restoreDedupChunk(ws, c, ids);
    }
    state.restoreWatermark(this.watermark.maxEventTime, this.watermark.watermark);
  }

  snapshot(): { rows: [string, WindowRow][]; chunks: [string, number[]][] } {
    return {
      rows: [...this.rows.entries()].sort((a, b) => a[0].localeCompare(b[0])),
      chunks: [...this.chunks.entries()].map(([k, v]): [string, number[]] => [k, [...v]]).sort((a, b) => a[0].localeCompare(b[0])),
    };
  }
}
