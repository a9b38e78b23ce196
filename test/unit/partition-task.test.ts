import assert from 'node:assert/strict';
import type Kafka from 'node-rdkafka';
import { PartitionTask } from '../../server/src/aggregator/partition-task.js';
import { decodeCountRecord } from '../../server/src/aggregator/count-record.js';
import { PartitionState } from '../../server/src/aggregator/core/index.js';
import { homePartition } from '../../server/src/impression/index.js';

const topics = { impressions: 'impressions', counts: 'impression-counts', changelog: 'changelog', dlq: 'dlq' };
const settings = { windowMs: 60_000, outOfOrdernessMs: 5_000, allowedLatenessMs: 30_000, dedupHorizonMs: 3_600_000, maxClockSkewMs: 300_000 };
const NOW = 1_764_150_000_000;

function idWithHome(partition: number, partitions: number, prefix: string): string {
  for (let i = 0; ; i++) if (homePartition(`${prefix}${i}`, partitions) === partition) return `${prefix}${i}`;
}

function message(offset: number, value: unknown, partition = 1): Kafka.Message {
  const v = typeof value === 'string' ? value : JSON.stringify(value);
  return { topic: 'impressions', partition, offset, value: Buffer.from(v), key: undefined, size: v.length, timestamp: NOW };
}

function event(id: string, ts = NOW - 1000) {
  return { impression_id: id, ts, advertiser_id: 'adv-1', campaign_id: 'cmp-1', cost_micros: 1500 };
}

describe('PartitionTask', () => {
  const task = () => new PartitionTask(1, new PartitionState(1, settings), 100, topics, 4, NOW);

  it('counts at home, flags duplicates, forwards strangers and dead-letters bad records', () => {
    const t = task();
    const home = idWithHome(1, 4, 'h-');
    const away = idWithHome(3, 4, 'a-');
    assert.equal(t.process(message(100, event(home)), NOW), 'counted');
    assert.equal(t.process(message(101, event(home)), NOW), 'duplicate');
    assert.equal(t.process(message(102, event(away)), NOW), 'forwarded');
    assert.equal(t.process(message(103, '{oops'), NOW), 'bad_json');
    assert.equal(t.process(message(104, event(idWithHome(1, 4, 'f-'), NOW + 86_400_000)), NOW), 'future_timestamp');
    assert.equal(t.nextOffset, 105);
    assert.ok(t.commitNeeded);

    const commit = t.prepareCommit();
    assert.equal(commit.offset, 105);
    const out = commit.records;
    const forwards = out.filter((r) => r.topic === 'impressions');
    assert.deepEqual(forwards.map((r) => [r.partition, r.key]), [[3, away]], 'forwarded to its home partition, keyed by id');
    const dlq = out.filter((r) => r.topic === 'dlq');
    assert.deepEqual(dlq.map((r) => r.headers?.[0]), [{ reason: 'bad_json' }, { reason: 'future_timestamp' }]);
    assert.ok(dlq.every((r) => r.partition === 1));
    const rows = out.filter((r) => r.topic === 'impression-counts' && !String(r.key).startsWith('watermark|')).map((r) => decodeCountRecord(r.value));
    assert.equal(rows.length, 1);
    assert.deepEqual(rows.map((r) => r?.type === 'window' && [r.impressions, r.duplicates, r.spend_micros, r.version]), [[1, 1, 1500, 1]]);
    const chunks = out.filter((r) => r.topic === 'changelog');
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0].value?.length, 16, 'one new id: one 16-byte hash');
    const wm = out.find((r) => r.key === 'watermark|1');
    assert.ok(wm, 'the watermark moved and is published');
  });

  it('needs no commit once everything it prepared was committed', () => {
    const t = task();
    t.process(message(100, event(idWithHome(1, 4, 'c-'))), NOW);
    t.postCommit(t.prepareCommit());
    assert.equal(t.commitNeeded, false);
    assert.deepEqual(t.prepareCommit().records, []);
  });

  it('keeps what it processes while a transaction commits for the next one', () => {
    const t = task();
    t.process(message(100, event(idWithHome(1, 4, 'p-'))), NOW);
    const first = t.prepareCommit();
    t.process(message(101, event(idWithHome(1, 4, 'q-'))), NOW);
    t.postCommit(first);
    assert.ok(t.commitNeeded, 'offset 101 is not committed yet');
    const second = t.prepareCommit();
    assert.equal(second.offset, 102);
    assert.equal(second.records.filter((r) => r.topic === 'changelog').length, 1, 'the second id goes in the second transaction');
  });
});
