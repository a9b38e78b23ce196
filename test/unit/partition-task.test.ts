import assert from 'node:assert/strict';
import type Kafka from 'node-rdkafka';
import { PartitionTask } from '../../server/src/aggregator/partition-task.js';
import { decodeCountRecord } from '../../server/src/contracts/count-record.js';
import { PartitionState, type WindowSettings } from '../../server/src/aggregator/core/index.js';
import { decodeMarker, encodeMarker, isMarkerKey, markerKey } from '../../server/src/contracts/repartition-record.js';
import { homePartition } from '../../server/src/impression/index.js';

const topics = { impressions: 'impressions', counts: 'impression-counts', changelog: 'changelog', dlq: 'dlq', repartition: 'repartition' };
const PARTITIONS = 4;
const settings: WindowSettings = {
  windowMs: 60_000, outOfOrdernessMs: 5_000, allowedLatenessMs: 30_000, dedupHorizonMs: 3_600_000, maxClockSkewMs: 300_000,
  partitions: PARTITIONS, idleTimeoutMs: 10_000, dimensions: [], dimensionValueLimit: 100,
};
const NOW = 1_764_150_000_000;
const ENDS: ReadonlyMap<number, number> = new Map();

function idWithHome(partition: number, prefix: string): string {
  for (let i = 0; ; i++) if (homePartition(`${prefix}${i}`, PARTITIONS) === partition) return `${prefix}${i}`;
}

function message(offset: number, value: unknown, opts: { topic?: string; key?: string; headers?: Kafka.MessageHeader[] } = {}): Kafka.Message {
  const v = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString() : JSON.stringify(value);
  return {
    topic: opts.topic ?? 'impressions', partition: 1, offset, value: Buffer.from(v), key: opts.key === undefined ? undefined : Buffer.from(opts.key),
    size: v.length, timestamp: NOW, headers: opts.headers,
  };
}

function event(id: string, ts = NOW - 1000) {
  return { impression_id: id, ts, advertiser_id: 'adv-1', campaign_id: 'cmp-1', cost_micros: 1500 };
}

describe('PartitionTask', () => {
  const task = () => new PartitionTask(1, new PartitionState(1, settings, NOW), { source: 100, channel: 7 }, topics, PARTITIONS, NOW);

  it('counts at home, flags duplicates, forwards strangers to the repartition topic and dead-letters bad records', () => {
    const t = task();
    const home = idWithHome(1, 'h-');
    const away = idWithHome(3, 'a-');
    assert.equal(t.processSource(message(100, event(home)), NOW), 'counted');
    assert.equal(t.processSource(message(101, event(home)), NOW), 'duplicate');
    assert.equal(t.processSource(message(102, event(away)), NOW), 'forwarded');
    assert.equal(t.processSource(message(103, '{oops'), NOW), 'bad_json');
    assert.equal(t.processSource(message(104, event(idWithHome(1, 'f-'), NOW + 86_400_000)), NOW), 'future_timestamp');
    assert.equal(t.nextSourceOffset, 105);

    const commit = t.prepareCommit(NOW, false, ENDS);
    assert.ok(commit);
    assert.deepEqual([commit.sourceOffset, commit.channelOffset], [105, 7]);
    const out = commit.records;
    const forwards = out.filter((r) => r.topic === 'repartition' && !isMarkerKey(r.key as string));
    assert.deepEqual(forwards.map((r) => [r.partition, r.key, r.headers]), [[3, away, [{ 'tally-forwarded-from': '1:102' }]]], 'to its home partition, keyed by id');
    const dlq = out.filter((r) => r.topic === 'dlq');
    assert.deepEqual(dlq.map((r) => r.headers?.[0]), [{ reason: 'bad_json' }, { reason: 'future_timestamp' }]);
    assert.deepEqual(dlq.map((r) => r.headers?.length), [5, 5], 'no arrival period but for too_late');
    assert.ok(dlq.every((r) => r.partition === 1));
    const rows = out.filter((r) => r.topic === 'impression-counts' && !String(r.key).startsWith('watermark|')).map((r) => decodeCountRecord(r.value));
    assert.deepEqual(rows.map((r) => r?.type === 'window' && [r.impressions, r.duplicates, r.spend_micros, r.version]), [[1, 1, 1500, 1]]);
    const chunks = out.filter((r) => r.topic === 'changelog');
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0].value?.length, 16, 'one new id: one 16-byte hash');
    assert.ok(out.find((r) => r.key === 'watermark|1'), 'the progress record moved and is written');
  });

  it('tells every other partition its source\'s watermark, after this transaction\'s forwards', () => {
    const t = task();
    t.processSource(message(100, event(idWithHome(2, 'x-'))), NOW);
    const out = t.prepareCommit(NOW, false, ENDS)?.records ?? [];
    const markers = out.filter((r) => r.topic === 'repartition' && isMarkerKey(r.key as string));
    assert.deepEqual(markers.map((r) => [r.partition, r.key]), [[0, markerKey(1)], [2, markerKey(1)], [3, markerKey(1)]]);
    assert.deepEqual(decodeMarker(markers[0].value as Buffer), { source: 1, mark: { watermark: NOW - 1000 - 5_000, idle: false, position: 101 } });
    const forwardAt = out.findIndex((r) => r.topic === 'repartition' && r.partition === 2 && !isMarkerKey(r.key as string));
    const markerAt = out.findIndex((r) => r.topic === 'repartition' && r.partition === 2 && isMarkerKey(r.key as string));
    assert.ok(forwardAt >= 0 && forwardAt < markerAt, 'the marker follows the forward on its channel');
  });

  it('counts forwarded copies from its channel and takes markers into its watermark', () => {
    const t = task();
    const id = idWithHome(1, 'fw-');
    const headers = [{ 'tally-forwarded-from': '3:555' }];
    assert.equal(t.processChannel(message(7, event(id), { topic: 'repartition', key: id, headers }), NOW), 'counted');
    assert.equal(t.processChannel(message(8, encodeMarker(3, { watermark: NOW - 60_000, idle: false, position: 0 }), { topic: 'repartition', key: markerKey(3) }), NOW), 'marker');
    assert.equal(t.processChannel(message(9, event(id, NOW - 3 * 86_400_000), { topic: 'repartition', key: id, headers }), NOW), 'duplicate');
    const late = idWithHome(1, 'late-');
    for (const p of [0, 2]) t.state.observeMarker(p, { watermark: NOW, idle: false, position: 0 }, NOW);
    t.processSource(message(100, event(idWithHome(1, 'own-'), NOW)), NOW);
    t.prepareCommit(NOW, false, ENDS);
    assert.equal(t.state.watermark, NOW - 60_000, 'source 3 holds it');
    t.state.observeMarker(3, { watermark: NOW, idle: false, position: 0 }, NOW);
    t.prepareCommit(NOW + 5_000, false, ENDS);
    assert.equal(t.processChannel(message(10, event(late, NOW - 3 * 86_400_000), { topic: 'repartition', key: late, headers }), NOW), 'too_late');
    const commit = t.prepareCommit(NOW, false, ENDS);
    assert.ok(commit);
    assert.equal(commit.channelOffset, 11);
    const dlq = commit.records.find((r) => r.topic === 'dlq');
    assert.deepEqual(dlq?.headers?.slice(2, 5), [{ 'source-topic': 'impressions' }, { 'source-partition': '3' }, { 'source-offset': '555' }],
      'a dead letter names the original input record');
    assert.equal(t.state.watermark, NOW - 5_000);
    assert.deepEqual(dlq?.headers?.slice(5), [{ 'arrival-period': String(Date.UTC(2025, 10, 26, 9)) }], 'billed in the hour its watermark (NOW − 5 s) was in');
  });

  it('has nothing to commit once everything it prepared was committed', () => {
    const t = task();
    t.processSource(message(100, event(idWithHome(1, 'c-'))), NOW);
    const first = t.prepareCommit(NOW, false, ENDS);
    assert.ok(first);
    t.postCommit(first);
    assert.equal(t.prepareCommit(NOW, false, ENDS), null);
  });

  it('keeps what it processes while a transaction commits for the next one', () => {
    const t = task();
    t.processSource(message(100, event(idWithHome(1, 'p-'))), NOW);
    const first = t.prepareCommit(NOW, false, ENDS);
    assert.ok(first);
    t.processSource(message(101, event(idWithHome(1, 'q-'))), NOW);
    t.postCommit(first);
    const second = t.prepareCommit(NOW, false, ENDS);
    assert.ok(second, 'offset 101 is not committed yet');
    assert.equal(second.sourceOffset, 102);
    assert.equal(second.records.filter((r) => r.topic === 'changelog').length, 1, 'the second id goes in the second transaction');
  });
});
