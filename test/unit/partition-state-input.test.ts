import assert from 'node:assert/strict';
import { type PartitionProgress } from '../../server/src/aggregator/core/index.js';
import { MIN, SETTINGS, T0, P, LATER, imp, newState, feed, forwarded, drain, rowOf, advanceTo } from './partition-state-fixtures.js';

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

});
