/**
 * The batch-sink loop's pure pieces (offsets to commit, backoff, rate limits, outages), the
 * dead-letter batch, and the ClickHouse side of the loop against a fake client.
 */
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { loadConfig } from '../../server/src/config/index.js';
import { encodeWatermark } from '../../server/src/contracts/count-record.js';
import { deadLetterHeaders } from '../../server/src/contracts/dead-letter.js';
import { createLogger } from '../../server/src/observability/index.js';
import { BatchWriter } from '../../server/src/sink/batch-writer.js';
import { DeadLetterBatch } from '../../server/src/sink/dead-letter-rows.js';
import { RowBatch } from '../../server/src/sink/index.js';
import { Throttle } from '../../server/src/observability/index.js';
import { Backoff, Outage } from '../../server/src/sink/pacing.js';
import { PartitionOffsets } from '../../server/src/sink/partition-offsets.js';
import { SinkMetrics } from '../../server/src/sink/sink-metrics.js';

describe('batch sink: PartitionOffsets', () => {
  it('keeps the highest offset per partition, sorted by partition', () => {
    const o = new PartitionOffsets();
    o.advance(3, 10);
    o.advance(1, 5);
    o.advance(3, 7);
    o.advanceAll([{ partition: 1, offset: 9 }, { partition: 0, offset: 2 }]);
    assert.equal(o.size, 3);
    assert.deepEqual(o.entries(), [{ partition: 0, offset: 2 }, { partition: 1, offset: 9 }, { partition: 3, offset: 10 }]);
    o.clear();
    assert.deepEqual(o.entries(), []);
  });

  it('merges a failed commit with the next batch: nothing goes backwards, nothing is lost', () => {
    const pending = new PartitionOffsets();
    pending.advanceAll([{ partition: 0, offset: 100 }, { partition: 2, offset: 40 }]);
    pending.advanceAll([{ partition: 0, offset: 180 }, { partition: 1, offset: 7 }]);
    assert.deepEqual(pending.entries(), [{ partition: 0, offset: 180 }, { partition: 1, offset: 7 }, { partition: 2, offset: 40 }]);
  });
});

describe('batch sink: pacing', () => {
  it('Backoff doubles from the first delay and stays at the cap', () => {
    const b = new Backoff(100, 5_000);
    assert.deepEqual(Array.from({ length: 9 }, () => b.next()), [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]);
  });

  it('Throttle passes once per interval; a forced pass counts too', () => {
    const t = new Throttle(10_000);
    assert.equal(t.ready(1_000), true, 'the first call passes');
    assert.equal(t.ready(5_000), false);
    assert.equal(t.ready(10_999), false);
    assert.equal(t.ready(11_000), true);
    t.mark(15_000);
    assert.equal(t.ready(24_999), false);
    assert.equal(t.ready(25_000), true);
  });

  it('Outage: the first failure starts it, the next success ends it with its length and attempts', () => {
    const o = new Outage();
    assert.equal(o.recovered(500), undefined, 'a success without an outage ends nothing');
    assert.equal(o.failed(1_000), 1);
    assert.equal(o.failed(1_100), 2);
    assert.equal(o.failed(1_300), 3);
    assert.deepEqual(o.recovered(4_000), { downMs: 3_000, failedAttempts: 3 });
    assert.equal(o.recovered(4_100), undefined);
    assert.equal(o.failed(9_000), 1, 'a new outage starts over');
  });
});

describe('batch sink: DeadLetterBatch', () => {
  const headers = deadLetterHeaders({ reason: 'bad_json', detail: '', sourceTopic: 'impressions', sourcePartition: 3, sourceOffset: 77 });

  it('a row per record, one dead_letters insert, offsets past the last record of each partition', () => {
    const b = new DeadLetterBatch();
    assert.equal(b.isEmpty, true);
    assert.equal(b.firstRecordAt, undefined);
    assert.deepEqual(b.inserts(), []);
    b.add({ topic: 'dlq', partition: 2, offset: 9, value: Buffer.from('{not json'), headers }, 1_000);
    b.add({ topic: 'dlq', partition: 0, offset: 4, value: null }, 1_050);
    b.add({ topic: 'dlq', partition: 2, offset: 10, value: null }, 1_100);
    assert.equal(b.isEmpty, false);
    assert.equal(b.records, 3);
    assert.equal(b.rowCount, 3);
    assert.equal(b.firstRecordAt, 1_000);
    assert.deepEqual(b.offsets(), [{ partition: 0, offset: 5 }, { partition: 2, offset: 11 }]);
    const [insert, ...more] = b.inserts();
    assert.equal(more.length, 0);
    assert.equal(insert.table, 'dead_letters');
    assert.deepEqual(insert.values.map((r) => Object.keys(r)), Array(3).fill(insert.columns));
    assert.deepEqual(insert.values[0], {
      reason: 'bad_json', detail: '', source_topic: 'impressions', source_partition: 3, source_offset: 77,
      dlq_partition: 2, dlq_offset: 9, advertiser_id: '', event_ts: 0, arrival_period: 0,
    });
    b.clear();
    assert.equal(b.isEmpty, true);
    assert.deepEqual(b.offsets(), []);
    assert.equal(b.firstRecordAt, undefined);
  });
});

describe('batch sink: BatchWriter (fake ClickHouse)', () => {
  interface Insert { table: string; columns?: unknown; values: unknown }

  function setup(refusals: number) {
    const inserts: Insert[] = [];
    let left = refusals;
    const fake = {
      insert: async (p: Insert) => {
        if (left > 0) {
          left--;
          throw new Error('connect ECONNREFUSED 127.0.0.1:1');
        }
        inserts.push(p);
        return {};
      },
      close: async () => undefined,
    };
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger('test', 'debug', { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
    const metrics = new SinkMetrics();
    const config = loadConfig({ TALLY_CLICKHOUSE_DATABASE: 'tally_unit' });
    const writer = new BatchWriter(config, {
      events: 'sink', name: 'tally-sink', topic: 't', group: 'g', batchRows: 10, batchMs: 10, metrics,
      clickhouse: fake as unknown as ClickHouseClient,
    }, log);
    const msgs = (suffix: string) => lines.filter((l) => typeof l.msg === 'string' && l.msg.endsWith(suffix));
    return { writer, inserts, metrics, msgs };
  }

  function countsBatch(): RowBatch {
    const b = new RowBatch();
    b.add(0, 0, encodeWatermark({ source_partition: 0, watermark: 1_000, max_event_time: 2_000, emitted_at: 3_000 }));
    return b;
  }

  it('inserts every table of the batch into the configured database, and counts what landed', async () => {
    const { writer, inserts, metrics, msgs } = setup(0);
    assert.equal(await writer.tryInsert(countsBatch()), true);
    assert.deepEqual(inserts.map((i) => i.table), ['tally_unit.partition_watermarks']);
    assert.equal(writer.rowsInserted, 1);
    assert.equal((await metrics.rowsInserted.get()).values.find((v) => v.labels.table === 'partition_watermarks')?.value, 1);
    assert.equal(msgs('.batch_inserted').length, 1);
    assert.equal(msgs('.clickhouse_unavailable').length, 0);
  });

  it('an outage is reported once however many attempts fail, and its end once', async () => {
    const { writer, metrics, msgs } = setup(3);
    const batch = countsBatch();
    for (let i = 0; i < 3; i++) assert.equal(await writer.tryInsert(batch), false);
    assert.equal((await metrics.waitingForClickHouse.get()).values[0].value, 1);
    assert.equal((await metrics.insertFailures.get()).values[0].value, 3);
    assert.deepEqual(msgs('.clickhouse_unavailable').map((l) => l.msg), ['sink.clickhouse_unavailable']);
    assert.deepEqual(msgs('.insert_retry').map((l) => l.attempt), [2, 3]);
    assert.equal(await writer.tryInsert(batch), true);
    assert.equal((await metrics.waitingForClickHouse.get()).values[0].value, 0);
    const recovered = msgs('.clickhouse_recovered');
    assert.equal(recovered.length, 1);
    assert.equal(recovered[0].failedAttempts, 3);
    assert.equal(writer.rowsInserted, 1, 'refused attempts insert nothing');
  });
});
