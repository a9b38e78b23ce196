import assert from 'node:assert/strict';
import { encodeChunk, hashImpressionId, type WindowSettings } from '../../server/src/aggregator/core/index.js';
import { rowKey, type WindowRow } from '../../server/src/contracts/count-record.js';
import { MIN, SETTINGS, T0, P, LATER, imp, newState, feed, drain, rowOf, advanceTo, windowOf, progressOf, scenario, run, KafkaModel } from './partition-state-fixtures.js';

describe('PartitionState', () => {
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
