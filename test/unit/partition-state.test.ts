import assert from 'node:assert/strict';
import type { Impression } from '../../server/src/impression/index.js';
import {
  decodeChunk, encodeChunk, hashImpressionId, PartitionState, PERIOD_MS,
  type Changes, type PartitionProgress, type PeriodClose, type ProcessOutcome, type WindowSettings,
} from '../../server/src/aggregator/core/index.js';
import { rowKey, type WindowRow } from '../../server/src/contracts/count-record.js';

const MIN = 60_000;
const SETTINGS: WindowSettings = {
  windowMs: MIN,
  outOfOrdernessMs: 5_000,
  allowedLatenessMs: 10_000,
  dedupHorizonMs: 3_600_000,
  maxClockSkewMs: 300_000,
  partitions: 1,
  idleTimeoutMs: 10_000,
};
/** A window start (multiple of 60 s). */
const T0 = 1_764_150_000_000;
const P = 0;
/** A wall clock far enough ahead that min(max event time, now) is the max event time. */
const LATER = T0 + 86_400_000;

function imp(impressionId: string, ts: number, advertiserId = 'adv-1', campaignId = 'cmp-1', costMicros = 100): Impression {
  return { impressionId, ts, advertiserId, campaignId, costMicros };
}

function newState(settings: Partial<WindowSettings> = {}, partition = P, now = T0): PartitionState {
  return new PartitionState(partition, { ...SETTINGS, ...settings }, now);
}

/** A record of the state's own source whose home partition it is, as the task feeds it. */
function feed(state: PartitionState, i: Impression, nowMs = i.ts): ProcessOutcome {
  state.observeSourceEvent(i.ts, nowMs);
  return state.process(i, hashImpressionId(i.impressionId), nowMs);
}

/** A forwarded copy from another partition: counted here, but it does not move this source's time. */
function forwarded(state: PartitionState, i: Impression, nowMs = i.ts): ProcessOutcome {
  return state.process(i, hashImpressionId(i.impressionId), nowMs);
}

/** Every source partition's end: 0, where the idle sources of these tests have read to. */
const ENDS: ReadonlyMap<number, number> = new Map(Array.from({ length: 8 }, (_, p) => [p, 0]));

function drain(state: PartitionState, nowMs = LATER, sourceIdle = false): Changes {
  return state.drainChanges(nowMs, { idle: sourceIdle, position: 0 }, ENDS);
}

function rowOf(changes: Changes, windowStart: number, advertiserId = 'adv-1', campaignId = 'cmp-1'): WindowRow {
  const row = changes.rows.find((r) => r.windowStart === windowStart && r.advertiserId === advertiserId && r.campaignId === campaignId);
  assert.ok(row, `no row for ${windowStart}/${advertiserId}/${campaignId} in ${JSON.stringify(changes.rows, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
  return row;
}

/** Moves the watermark to exactly `wm` (an event in a side campaign, then a drain). */
function advanceTo(state: PartitionState, wm: number, tag: string): Changes {
  feed(state, imp(`wm-${tag}`, wm + SETTINGS.outOfOrdernessMs, 'adv-wm', 'cmp-wm'));
  const ch = drain(state);
  assert.equal(state.watermark, wm);
  return ch;
}

describe('PartitionState', () => {
  describe('counting', () => {
    it('counts new impressions into one row per (window, advertiser, campaign)', () => {
      const s = newState();
      assert.equal(feed(s, imp('a', T0 + 1, 'adv-1', 'cmp-1', 100)).kind, 'counted');
      feed(s, imp('b', T0 + 59_999, 'adv-1', 'cmp-1', 250));
      feed(s, imp('c', T0 + 2, 'adv-1', 'cmp-2', 7));
      feed(s, imp('d', T0 + 3, 'adv-2', 'cmp-1', 9));
      feed(s, imp('e', T0 + MIN, 'adv-1', 'cmp-1', 1)); // first ms of the next window
      const ch = drain(s);
      assert.equal(ch.rows.length, 4);
      assert.deepEqual(rowOf(ch, T0), {
        windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: P,
        impressions: 2, spendMicros: 350n, duplicates: 0, version: 1, final: false, revised: false,
      });
      assert.equal(rowOf(ch, T0, 'adv-1', 'cmp-2').spendMicros, 7n);
      assert.equal(rowOf(ch, T0, 'adv-2', 'cmp-1').impressions, 1);
      assert.equal(rowOf(ch, T0 + MIN).impressions, 1);
      assert.equal(s.windowsOpen, 2);
      assert.equal(s.idsHeld, 5);
    });

    it('works with 1 s windows', () => {
      const s = newState({ windowMs: 1000, outOfOrdernessMs: 200, allowedLatenessMs: 300, dedupHorizonMs: 2000 });
      for (let i = 0; i < 30; i++) feed(s, imp(`i${i}`, T0 + i * 100));
      const ch = drain(s);
      assert.deepEqual(ch.rows.map((r) => [r.windowStart, r.windowEnd, r.impressions]), [
        [T0, T0 + 1000, 10], [T0 + 1000, T0 + 2000, 10], [T0 + 2000, T0 + 3000, 10],
      ]);
      assert.equal(ch.watermark, T0 + 2900 - 200);
      // T0 window closes at T0 + 1000 + 300 ≤ watermark 2700 → final; T0+1000 closes at 2300 → final; T0+2000 not.
      assert.deepEqual(ch.rows.map((r) => r.final), [true, true, false]);
    });

    it('keeps spend exact past 2^53 micros in one row', () => {
      const s = newState();
      const cost = 1_000_000_000_000; // the contract's maximum cost of one impression
      for (let i = 0; i < 10_000; i++) feed(s, imp(`big-${i}`, T0 + 1, 'adv-1', 'cmp-1', cost));
      feed(s, imp('small', T0 + 1, 'adv-1', 'cmp-1', 7));
      const row = rowOf(drain(s), T0);
      assert.equal(row.spendMicros, 10_000n * 1_000_000_000_000n + 7n);
      assert.ok(row.spendMicros > BigInt(Number.MAX_SAFE_INTEGER));
    });
  });

  describe('event time', () => {
    it('moves at each drain to max event time − out-of-orderness, never back', () => {
      const s = newState();
      assert.equal(s.watermark, 0);
      feed(s, imp('a', T0 + 30_000));
      assert.equal(s.watermark, 0, 'not before the drain');
      assert.equal(drain(s).watermark, T0 + 25_000);
      feed(s, imp('b', T0 + 1_000));
      assert.equal(drain(s).watermark, T0 + 25_000);
      assert.equal(s.maxEventTime, T0 + 30_000);
    });

    it('a fast clock cannot close the present: the watermark never passes the wall clock − out-of-orderness', () => {
      const s = newState();
      const now = T0 + 10 * MIN;
      const ahead = now + 4 * MIN; // within the 5 min skew
      assert.equal(feed(s, imp('ahead', ahead), now).kind, 'counted');
      assert.equal(drain(s, now).watermark, now - 5_000);
      feed(s, imp('now', now + 1), now);
      assert.equal(rowOf(drain(s, now), now).final, false, 'the current window is open');
      assert.equal(drain(s, now + MIN).watermark, now + MIN - 5_000, 'it follows the clock up to the event');
      assert.equal(drain(s, ahead + MIN).watermark, ahead - 5_000, 'and stops at the event');
    });

    it('refuses beyond maxClockSkewMs ahead of the clock and moves nothing with it', () => {
      const s = newState();
      const now = T0;
      assert.equal(feed(s, imp('ok', now + SETTINGS.maxClockSkewMs), now).kind, 'counted');
      assert.equal(feed(s, imp('ahead', now + SETTINGS.maxClockSkewMs + MIN * 10), now).kind, 'future_timestamp');
      assert.equal(feed(s, imp('ahead2', now + SETTINGS.maxClockSkewMs + 1), now).kind, 'future_timestamp');
      assert.equal(s.maxEventTime, now + SETTINGS.maxClockSkewMs);
      assert.equal(s.idsHeld, 1);
    });

    it('idle is not progress: an idle source with no other input never moves the watermark', () => {
      const s = newState();
      feed(s, imp('a', T0 + 1));
      assert.equal(drain(s, T0 + 1).watermark, T0 + 1 - 5_000);
      for (let t = T0 + MIN; t < T0 + 300 * MIN; t += 7 * MIN) assert.equal(drain(s, t, true).watermark, T0 + 1 - 5_000);
      // Events the producer buffered during the silence are on time, in their own windows.
      assert.equal(feed(s, imp('buffered', T0 + 100 * MIN), T0 + 300 * MIN).kind, 'counted');
      const row = rowOf(drain(s, T0 + 300 * MIN), T0 + 100 * MIN);
      assert.deepEqual([row.final, row.revised], [false, false]);
    });

    it('is the minimum over the source and every channel: a forwarded record is judged by its own source', () => {
      // Partition 1 of 3: its own source reads a backlog up to "now", while source 0's forwards are still queued.
      const s = newState({ partitions: 3 }, 1);
      for (let i = 0; i < 100; i++) feed(s, imp(`own-${i}`, T0 + i * MIN));
      s.observeMarker(0, { watermark: T0 - 5_000, idle: false, position: 0 }, LATER);
      s.observeMarker(2, { watermark: T0 + 99 * MIN, idle: false, position: 0 }, LATER);
      assert.equal(drain(s).watermark, T0 - 5_000, 'source 0 holds it back');
      // Source 0's old records arrive forwarded: on time, not too_late, not even late.
      assert.equal(forwarded(s, imp('fwd-0', T0 + 5)).kind, 'counted');
      const row = rowOf(drain(s), T0);
      assert.deepEqual([row.impressions, row.final, row.revised], [2, false, false]);
      s.observeMarker(0, { watermark: T0 + 50 * MIN, idle: false, position: 0 }, LATER);
      assert.equal(drain(s).watermark, T0 + 50 * MIN);
      assert.equal(s.maxEventTime, T0 + 99 * MIN, 'forwards do not move this source');
    });

    it('skips an idle channel while others carry traffic, and holds when all are idle', () => {
      const s = newState({ partitions: 2 }, 0, T0);
      const now = T0 + 10 * MIN;
      feed(s, imp('a', now));
      s.observeMarker(1, { watermark: T0, idle: true, position: 0 }, now);
      assert.equal(drain(s, now).watermark, now - 5_000, 'channel 1 is idle: skipped');
      assert.equal(drain(s, now + 20 * MIN, true).watermark, now - 5_000, 'all idle: held');
      assert.equal(drain(s, now + 600 * MIN, true).watermark, now - 5_000, 'however long');
    });

    it('an idle claim counts only while its source has read to the end of its partition (a stalled consumer holds again)', () => {
      const s = newState({ partitions: 2 }, 0, T0);
      const now = T0 + 10 * MIN;
      feed(s, imp('a', now));
      s.observeMarker(1, { watermark: T0, idle: true, position: 500 }, now);
      const ends = new Map([[0, 0], [1, 501]]);
      assert.equal(s.drainChanges(now, { idle: false, position: 0 }, ends).watermark, now - 5_000, 'read to its end: skipped');
      feed(s, imp('b', now + MIN));
      // Records arrived on partition 1, but its consumer does not move (its process is paused).
      ends.set(1, 620);
      assert.equal(s.drainChanges(now + MIN, { idle: false, position: 0 }, ends).watermark, now - 5_000, 'behind: it holds again');
      ends.delete(1);
      assert.equal(s.drainChanges(now + MIN, { idle: false, position: 0 }, ends).watermark, now - 5_000, 'its end unknown: it holds');
      s.observeMarker(1, { watermark: now + MIN, idle: false, position: 620 }, now + MIN);
      assert.equal(s.drainChanges(now + MIN, { idle: false, position: 0 }, ends).watermark, now + MIN - 5_000);
    });

    it('emits this source\'s mark for the other partitions at the first drain, at each whole second and when idle flips', () => {
      const s = newState({ partitions: 3 }, 1);
      feed(s, imp('a', T0 + 10_000));
      assert.deepEqual(drain(s).sourceMark, { watermark: T0 + 5_000, idle: false, position: 0 });
      feed(s, imp('b', T0 + 10_500));
      assert.equal(drain(s).sourceMark, null, 'same second');
      feed(s, imp('c', T0 + 11_000));
      assert.deepEqual(drain(s).sourceMark, { watermark: T0 + 6_000, idle: false, position: 0 });
      assert.deepEqual(drain(s, LATER, true).sourceMark, { watermark: T0 + 6_000, idle: true, position: 0 });
      assert.equal(drain(s, LATER + 9_999, true).sourceMark, null);
      assert.deepEqual(drain(s, LATER + 10_000, true).sourceMark, { watermark: T0 + 6_000, idle: true, position: 0 }, 'repeated once per idle timeout');
      assert.equal(drain(newState()).sourceMark, null, 'one partition: nobody to tell');
    });

    it('after a restore every input holds the task back until it reports again, even one that was idle before', () => {
      const s = newState({ partitions: 2 }, 0);
      const progress: PartitionProgress = {
        watermark: T0, maxEventTime: T0 + 5_000, sourceWatermark: T0, inputs: [{ watermark: T0, idle: false, position: 0 }, { watermark: T0 - MIN, idle: true, position: 0 }],
        closedThrough: T0 - 10_000, evictedBefore: 0, periodsClosedBefore: 0, openPeriods: [], windowMs: MIN, partitions: 2,
      };
      s.restoreProgress(progress, LATER);
      feed(s, imp('backlog', T0 + 30 * MIN));
      assert.equal(drain(s, LATER + 60_000).watermark, T0, 'input 1 may have a backlog since it went idle');
      s.observeMarker(1, { watermark: T0 + 10 * MIN, idle: false, position: 0 }, LATER + 61_000);
      assert.equal(drain(s, LATER + 61_000).watermark, T0 + 10 * MIN);
    });
  });

  describe('duplicates', () => {
    it('counts an id once and the copies as duplicates', () => {
      const s = newState();
      const i = imp('a', T0 + 5, 'adv-1', 'cmp-1', 1000);
      assert.equal(feed(s, i).kind, 'counted');
      assert.equal(feed(s, i).kind, 'duplicate');
      assert.equal(feed(s, i).kind, 'duplicate');
      const ch = drain(s);
      assert.equal(ch.rows.length, 1);
      assert.deepEqual([ch.rows[0].impressions, ch.rows[0].spendMicros, ch.rows[0].duplicates, ch.rows[0].version], [1, 1000n, 2, 1]);
      assert.equal(ch.dedupDeltas.length, 1);
      assert.equal(ch.dedupDeltas[0].ids.length, 16);
    });

    it('recognises a duplicate in a later drain and emits the row again with only duplicates changed', () => {
      const s = newState();
      const i = imp('a', T0 + 5);
      feed(s, i);
      drain(s);
      assert.equal(feed(s, i).kind, 'duplicate');
      const ch = drain(s);
      assert.deepEqual([ch.rows[0].impressions, ch.rows[0].duplicates, ch.rows[0].version], [1, 1, 2]);
      assert.deepEqual(ch.dedupDeltas, [], 'no new id, no changelog chunk');
    });

    it('is by id, whatever the copy\'s timestamp: a retry re-stamped into the next window counts once, in the first copy\'s window', () => {
      const s = newState();
      assert.equal(feed(s, imp('a', T0 + MIN - 1)).kind, 'counted');
      assert.equal(feed(s, imp('a', T0 + MIN + 2_000)).kind, 'duplicate');
      assert.equal(feed(s, imp('a', T0 + 7 * MIN)).kind, 'duplicate');
      const ch = drain(s);
      assert.deepEqual(ch.rows.map((r) => [r.windowStart, r.impressions, r.duplicates]), [[T0, 1, 2]]);
      assert.equal(s.idsHeld, 1);
      assert.equal(s.windowsOpen, 1);
    });

    it('a copy re-stamped back into a window past the horizon is a duplicate, not too_late, while the first copy is held', () => {
      const s = newState();
      const horizonEnd = T0 + MIN + SETTINGS.allowedLatenessMs + SETTINGS.dedupHorizonMs;
      advanceTo(s, horizonEnd, '1');
      assert.equal(feed(s, imp('x', horizonEnd)).kind, 'counted');
      assert.equal(feed(s, imp('x', T0 + 1)).kind, 'duplicate');
      assert.equal(feed(s, imp('y', T0 + 1)).kind, 'too_late');
    });

    it('treats the same id in another campaign as a duplicate (the id is what is deduplicated)', () => {
      const s = newState();
      feed(s, imp('a', T0 + 5, 'adv-1', 'cmp-1'));
      assert.equal(feed(s, imp('a', T0 + 5, 'adv-1', 'cmp-2')).kind, 'duplicate');
      const ch = drain(s);
      assert.equal(rowOf(ch, T0, 'adv-1', 'cmp-2').impressions, 0);
      assert.equal(rowOf(ch, T0, 'adv-1', 'cmp-2').duplicates, 1);
    });
  });

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

  describe('restore', () => {
    const row0: WindowRow = {
      windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: P,
      impressions: 5, spendMicros: 500n, duplicates: 1, version: 3, final: false, revised: false,
    };

    it('restoreRow keeps the highest version per key, in any order, and leaves nothing pending', () => {
      const s = newState();
      s.restoreRow(row0);
      s.restoreRow({ ...row0, impressions: 4, version: 2 });
      s.restoreRow({ ...row0, impressions: 6, version: 4, spendMicros: 2n ** 60n });
      s.restoreRow({ ...row0, impressions: 1, version: 1 });
      assert.deepEqual(drain(s).rows, []);
      s.restoreDedupChunk(T0, 0, encodeChunk([hashImpressionId('x')]));
      feed(s, imp('new', T0 + 1, 'adv-1', 'cmp-1', 10));
      const row = rowOf(drain(s), T0);
      assert.deepEqual([row.impressions, row.spendMicros, row.duplicates, row.version], [7, 2n ** 60n + 10n, 1, 5]);
    });

    it('restored ids are duplicates; chunk numbers continue after the highest restored', () => {
      const s = newState();
      s.restoreDedupChunk(T0, 0, encodeChunk([hashImpressionId('a')]));
      s.restoreDedupChunk(T0, 4, encodeChunk([hashImpressionId('b'), hashImpressionId('c')]));
      s.restoreDedupChunk(T0, 2, encodeChunk([hashImpressionId('d')]));
      assert.equal(s.idsHeld, 4);
      assert.equal(feed(s, imp('c', T0 + MIN + 1)).kind, 'duplicate', 'in another window too');
      assert.equal(feed(s, imp('e', T0 + 1)).kind, 'counted');
      assert.deepEqual(drain(s).dedupDeltas.map((d) => [d.windowStart, d.chunk]), [[T0, 5]]);
    });

    it('after a restore, a late change to a window closed before the crash is revised', () => {
      const s = newState();
      const progress = progressOf(T0 + MIN + SETTINGS.allowedLatenessMs);
      s.restoreProgress(progress, LATER);
      s.restoreRow({ ...row0, impressions: 1, version: 2, final: true });
      s.restoreDedupChunk(T0, 0, encodeChunk([hashImpressionId('a')]));
      feed(s, imp('late', T0 + 2), T0 + 2 * MIN);
      const row = rowOf(drain(s), T0);
      assert.deepEqual([row.impressions, row.version, row.final, row.revised], [2, 3, true, true]);
    });

    it('refuses a restart with another window size or partition count, naming the variable and both values', () => {
      assert.throws(() => newState({ windowMs: 30_000 }).restoreProgress(progressOf(T0), LATER), /TALLY_WINDOW_MS=30000.*TALLY_WINDOW_MS=60000/);
      assert.throws(() => newState({ partitions: 2 }).restoreProgress(progressOf(T0), LATER), /TALLY_PARTITIONS=2.*TALLY_PARTITIONS=1/);
      const s = newState();
      assert.throws(() => s.restoreRow({ ...row0, sourcePartition: P + 1 }), /partition/);
      assert.throws(() => s.restoreRow({ ...row0, windowEnd: T0 + 30_000 }), /TALLY_WINDOW_MS/);
      assert.throws(() => s.restoreRow({ ...row0, windowStart: T0 + 1, windowEnd: T0 + 1 + MIN }), /TALLY_WINDOW_MS/);
      assert.throws(() => s.restoreDedupChunk(T0 + 1000, 0, new Uint8Array(0)), /TALLY_WINDOW_MS/);
    });

    it('a larger dedup horizon after a restart never reopens an evicted window; a smaller one evicts at once', () => {
      const first = newState();
      feed(first, imp('old', T0 + 1));
      const wm = T0 + MIN + SETTINGS.allowedLatenessMs + SETTINGS.dedupHorizonMs;
      const kafka = new KafkaModel();
      kafka.write(drain(first));
      const retired = advanceTo(first, wm, '1');
      kafka.write(retired);
      assert.deepEqual(retired.evicted.map((e) => e.windowStart), [T0], 'T0 retired');

      const larger = newState({ dedupHorizonMs: 4 * SETTINGS.dedupHorizonMs });
      kafka.restoreInto(larger);
      assert.equal(feed(larger, imp('old', T0 + 1), wm).kind, 'too_late', 'a late copy of an old id is not counted again');
      assert.equal(feed(larger, imp('new-in-old', T0 + 2), wm).kind, 'too_late', 'nor anything else in that window');
      assert.equal(drain(larger).rows.length, 0);

      const smaller = newState({ dedupHorizonMs: 60_000 });
      feed(first, imp('mid', wm - 10 * MIN));
      kafka.write(drain(first));
      kafka.restoreInto(smaller);
      const ch = drain(smaller);
      assert.deepEqual(ch.evicted.map((e) => e.windowStart), [windowOf(wm - 10 * MIN)]);
      assert.equal(feed(smaller, imp('mid', wm - 10 * MIN), wm).kind, 'too_late');
    });

    it('a larger allowed lateness after a restart never reopens a closed window', () => {
      const first = newState();
      feed(first, imp('a', T0 + 1));
      const kafka = new KafkaModel();
      kafka.write(advanceTo(first, T0 + MIN + SETTINGS.allowedLatenessMs, '1'));
      const again = newState({ allowedLatenessMs: 10 * MIN });
      kafka.restoreInto(again);
      feed(again, imp('late', T0 + 2), LATER);
      const row = rowOf(drain(again), T0);
      assert.deepEqual([row.final, row.revised], [true, true]);
    });

    it('restore-then-continue gives exactly what uninterrupted processing gives', () => {
      const settings: Partial<WindowSettings> = { windowMs: 1000, outOfOrdernessMs: 500, allowedLatenessMs: 1000, dedupHorizonMs: 5000, maxClockSkewMs: 2000 };
      const events = scenario(4000, 42);
      const half = 2000;

      // Uninterrupted: A then B, draining every 50 events.
      const whole = newState(settings);
      const wholeA = run(whole, events.slice(0, half));
      const wholeB = run(whole, events.slice(half));

      // Crash after A: everything A's drains committed, read back as restore would read it.
      const first = newState(settings);
      const firstA = run(first, events.slice(0, half));
      assert.deepEqual(firstA.drains, wholeA.drains);
      const kafka = new KafkaModel();
      for (const ch of firstA.drains) kafka.write(ch);
      const restored = newState(settings);
      const lastNow = events[half - 1].now;
      kafka.restoreInto(restored, lastNow);
      assert.deepEqual(drain(restored, lastNow), {
        rows: [], dedupDeltas: [], evicted: [], closes: [], watermark: first.watermark, sourceMark: null, progress: null,
      }, 'restored state is already committed');
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
      for (const ch of [...wholeA.drains, ...wholeB.drains]) viewWhole.write(ch);
      const viewRestored = new KafkaModel();
      for (const ch of [...firstA.drains, ...restoredB.drains]) viewRestored.write(ch);
      assert.deepEqual(viewRestored.snapshot(), viewWhole.snapshot());
    });
  });

  describe('gauges and settings', () => {
    it('reports windows open, ids held and dedup bytes', () => {
      const s = newState();
      assert.deepEqual([s.windowsOpen, s.idsHeld], [0, 0]);
      for (let i = 0; i < 1000; i++) feed(s, imp(`id-${i}`, T0 + (i % 3) * MIN + 1));
      feed(s, imp('id-1', T0 + MIN + 1));
      assert.equal(s.windowsOpen, 3);
      assert.equal(s.idsHeld, 1000);
      assert.ok(s.dedupBytes >= 1000 * 16, String(s.dedupBytes));
    });

    it('refuses nonsensical settings', () => {
      assert.throws(() => newState({ windowMs: 0 }), RangeError);
      assert.throws(() => newState({ windowMs: 1.5 }), RangeError);
      assert.throws(() => newState({ allowedLatenessMs: -1 }), RangeError);
      assert.throws(() => newState({ dedupHorizonMs: Number.NaN }), RangeError);
      assert.throws(() => newState({ partitions: 2 }, 2), RangeError);
    });
  });
});

// ── helpers ─────────────────────────────────────────────────────────────────────────────────────

function windowOf(ts: number): number {
  return ts - (ts % MIN);
}

function periodStart(ts: number): number {
  return ts - (ts % PERIOD_MS);
}

/** A progress record of one partition (of one) at watermark `wm`, as a drain at that watermark writes it. */
function progressOf(wm: number): PartitionProgress {
  return {
    watermark: wm, maxEventTime: wm + 5_000, sourceWatermark: wm, inputs: [{ watermark: wm, idle: false, position: 0 }],
    closedThrough: wm - SETTINGS.allowedLatenessMs, evictedBefore: 0, periodsClosedBefore: 0, openPeriods: [], windowMs: MIN, partitions: 1,
  };
}

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
      // a producer retry: the same event again, possibly much later, sometimes re-stamped
      const back = events[Math.floor(rand() * events.length)].imp;
      events.push({ imp: r < 0.03 ? { ...back, ts: clock } : back, now: clock });
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
    outcomes.push(feed(state, e.imp, e.now).kind);
    if (i % 50 === 49) drains.push(copyChanges(drain(state, e.now)));
  });
  drains.push(copyChanges(drain(state, events[events.length - 1].now)));
  return { outcomes, drains };
}

/** Deep copy with id chunks as plain arrays, so deepEqual compares contents. */
function copyChanges(ch: Changes): Changes {
  return {
    ...ch,
    rows: ch.rows.map((r) => ({ ...r })),
    dedupDeltas: ch.dedupDeltas.map((d) => ({ ...d, ids: Uint8Array.from(d.ids) })),
    evicted: ch.evicted.map((e) => ({ ...e })),
    closes: ch.closes.map((c) => ({ ...c, rows: c.rows.map((r) => ({ ...r })), rowKeys: [...c.rowKeys], late: c.late.map((l) => ({ ...l })) })),
  };
}

/** What the compacted impression-counts and changelog partitions hold after a series of drains. */
class KafkaModel {
  private rows = new Map<string, WindowRow>();
  private chunks = new Map<string, Uint8Array>();
  private progress: PartitionProgress | null = null;

  readonly closes: PeriodClose[] = [];

  write(ch: Changes): void {
    for (const r of ch.rows) this.rows.set(rowKey(r.windowStart, r.advertiserId, r.campaignId, r.sourcePartition), { ...r });
    for (const d of ch.dedupDeltas) this.chunks.set(`${d.windowStart}:${d.chunk}`, Uint8Array.from(d.ids));
    for (const e of ch.evicted) for (let c = 0; c < e.chunks; c++) this.chunks.delete(`${e.windowStart}:${c}`);
    for (const c of ch.closes) {
      for (const k of c.rowKeys) this.rows.delete(k);
      this.closes.push(c);
    }
    if (ch.progress !== null) this.progress = ch.progress;
  }

  restoreInto(state: PartitionState, now = LATER): void {
    if (this.progress !== null) state.restoreProgress(this.progress, now);
    for (const r of this.rows.values()) state.restoreRow(r);
    for (const [key, ids] of this.chunks) {
      const [ws, c] = key.split(':').map(Number);
      state.restoreDedupChunk(ws, c, ids);
    }
  }

  snapshot(): { rows: [string, WindowRow][]; chunks: [string, number[]][] } {
    return {
      rows: [...this.rows.entries()].sort((a, b) => a[0].localeCompare(b[0])),
      chunks: [...this.chunks.entries()].map(([k, v]): [string, number[]] => [k, [...v]]).sort((a, b) => a[0].localeCompare(b[0])),
    };
  }
}
