import assert from 'node:assert/strict';
import { encodeWatermark, encodeWindowRow } from '../../server/src/contracts/count-record.js';
import type { Principal } from '../../server/src/auth/principal.js';
import { closedTotalsSql, preloadSql, toSafeInt } from '../../server/src/live/live-clickhouse.js';
import { decodeLiveRecord } from '../../server/src/live/live-record.js';
import { initialView, viewRefusal } from '../../server/src/live/live-views.js';
import { throughputFromSamples } from '../../server/src/live/pipeline-monitor.js';

const T0 = Date.UTC(2025, 10, 26, 12, 0, 0);
const admin: Principal = { tokenId: 't1', name: 'ops', scopes: ['admin'] };
const advA: Principal = { tokenId: 't2', name: 'a', scopes: ['advertiser:adv-a', 'advertiser:adv-c'] };
const ingest: Principal = { tokenId: 't3', name: 'in', scopes: ['ingest'] };

describe('live helpers', () => {
  describe('decodeLiveRecord', () => {
    it('decodes window rows and watermarks as the aggregator writes them', () => {
      const w = decodeLiveRecord(encodeWindowRow({
        windowStart: T0, windowEnd: T0 + 60_000, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: 3,
        impressions: 7, spendMicros: 700n, duplicates: 2, version: 4, final: false, revised: false,
      }));
      assert.deepEqual(w, {
        kind: 'window',
        row: { windowStart: T0, windowEnd: T0 + 60_000, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: 3, impressions: 7, spendMicros: 700n, duplicates: 2, version: 4 },
      });
      const m = decodeLiveRecord(encodeWatermark({ source_partition: 2, watermark: T0, max_event_time: T0 + 5_000, emitted_at: T0 + 9 }));
      assert.deepEqual(m, { kind: 'watermark', partition: 2, watermark: T0, emittedAt: T0 + 9 });
    });

    it('recognises tombstones (evicted windows) and refuses records tally did not write', () => {
      assert.deepEqual(decodeLiveRecord(null), { kind: 'tombstone' });
      assert.deepEqual(decodeLiveRecord(Buffer.alloc(0)), { kind: 'tombstone' });
      assert.deepEqual(decodeLiveRecord(Buffer.from('{nope')), { kind: 'poison', reason: 'not_json' });
      assert.deepEqual(decodeLiveRecord(Buffer.from('{"type":"other"}')), { kind: 'poison', reason: 'unknown_type' });
      const bad = { type: 'window', window_start: T0, window_end: T0 + 1, advertiser_id: 'a', campaign_id: 'c', source_partition: 0, impressions: -1, spend_micros: 0, duplicates: 0, version: 1 };
      assert.deepEqual(decodeLiveRecord(Buffer.from(JSON.stringify(bad))), { kind: 'poison', reason: 'bad_impressions' });
      assert.deepEqual(decodeLiveRecord(Buffer.from(JSON.stringify({ ...bad, impressions: 1, version: 1.5 }))), { kind: 'poison', reason: 'bad_version' });
    });
  });

  describe('views', () => {
    it('an advertiser sees its own advertisers only; all (null) is for admins', () => {
      assert.equal(viewRefusal(advA, 'adv-a'), null);
      assert.equal(viewRefusal(advA, 'adv-c'), null);
      assert.match(viewRefusal(advA, 'adv-b') ?? '', /not allowed/);
      assert.match(viewRefusal(advA, null) ?? '', /admin/);
      assert.equal(viewRefusal(admin, null), null);
      assert.equal(viewRefusal(admin, 'anything'), null);
    });

    it('initial view: the requested one if allowed, else the default (with the refusal); none without read access', () => {
      assert.deepEqual(initialView(advA, undefined), { view: 'adv-a', refusal: null });
      assert.deepEqual(initialView(advA, 'adv-c'), { view: 'adv-c', refusal: null });
      assert.deepEqual(initialView(advA, 'adv-b'), { view: 'adv-a', refusal: 'not allowed to read advertiser adv-b' });
      assert.deepEqual(initialView(admin, undefined), { view: null, refusal: null });
      assert.deepEqual(initialView(admin, 'adv-b'), { view: 'adv-b', refusal: null });
      assert.deepEqual(initialView(advA, 'bad id!'), { view: 'adv-a', refusal: null });
      assert.equal(initialView(ingest, undefined), undefined);
    });
  });

  describe('throughputFromSamples', () => {
    it('records per second between the sample ~10 s back and the newest, per partition', () => {
      const s = (at: number, o: Array<[number, number]>) => ({ at, offsets: new Map(o) });
      assert.equal(throughputFromSamples([]), 0);
      assert.equal(throughputFromSamples([s(0, [[0, 5]])]), 0);
      const samples = [s(0, [[0, 0], [1, 0]]), s(2_000, [[0, 100], [1, 0]]), s(12_000, [[0, 1_000], [1, 1_000], [2, 50]])];
      // Base = the sample at 2 s (10 s before the newest): (900 + 1000) / 10 s; partition 2 is new (no base).
      assert.equal(throughputFromSamples(samples), 190);
      // A partition absent from the best base is measured from the nearest sample that has it.
      const late = [s(0, []), s(1_000, [[0, 100]]), s(3_000, [[0, 500]])];
      assert.equal(throughputFromSamples(late), 200);
      // Offsets going back (a reset group) count as 0, not negative.
      assert.equal(throughputFromSamples([s(0, [[0, 100]]), s(1_000, [[0, 10]])]), 0);
    });
  });

  describe('SQL', () => {
    it('is built from escaped literals only', () => {
      assert.equal(preloadSql('tally', T0),
        `SELECT toUnixTimestamp(window_start) * 1000 AS ws, toUnixTimestamp(window_end) * 1000 AS we, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, version FROM tally.impression_counts FINAL WHERE window_start >= toDateTime(${T0 / 1000})`);
      assert.match(closedTotalsSql('t_x', T0, T0 + 60_000), /FROM t_x\.impression_counts FINAL WHERE window_start >= toDateTime\(\d+\) AND window_start <= toDateTime\(\d+\)$/);
      assert.throws(() => preloadSql('x; DROP', T0));
      assert.throws(() => preloadSql('tally', -1));
      assert.equal(toSafeInt('18446744', 'x'), 18_446_744);
      assert.throws(() => toSafeInt('18446744073709551615', 'x'), RangeError);
    });
  });
});
