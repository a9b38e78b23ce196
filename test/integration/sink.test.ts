/**
 * `tally sink` as a real child process against the real broker and ClickHouse: highest version
 * per key, tombstones and aborted transactions ignored, poison records skipped, SIGTERM flushes,
 * a backlog caught up. Crashes: sink-crash.test.ts; ClickHouse outages: sink-outage.test.ts.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { identifier, queryRows } from '../../server/src/clickhouse/index.js';
import { TransactionalProducer, type OutgoingRecord } from '../../server/src/kafka/index.js';
import { eventually } from '../kit/harness.js';
import { assertExact, committedAndEnd, CountsModel, rawCount, SinkTestBed } from './sink-fixtures.js';
import { metricValue } from '../kit/metrics.js';
import { logLines, scrapeMetrics } from '../kit/role-logs.js';

async function transactionalProducer(brokers: string): Promise<TransactionalProducer> {
  const p = new TransactionalProducer({ brokers, transactionalId: `sink-test-${crypto.randomUUID()}`, transactionTimeoutMs: 60_000 });
  await p.connect();
  await p.initTransactions();
  return p;
}

async function inTransaction(p: TransactionalProducer, records: OutgoingRecord[], outcome: 'commit' | 'abort'): Promise<void> {
  await p.beginTransaction();
  for (const r of records) await p.produce(r);
  if (outcome === 'commit') await p.commitTransaction();
  else await p.abortTransaction();
}

describe('tally sink (real Kafka + ClickHouse)', function () {
  this.timeout(180_000);
  const bed = new SinkTestBed();

  afterEach(async function () {
    this.timeout(120_000);
    await bed.release();
  });

  it('keeps the highest version per key across batches; tombstones, aborted transactions and poison records change nothing', async () => {
    const { sb, ch, producer, db } = await bed.setup('sinkbasic', { TALLY_PARTITIONS: '4', TALLY_SINK_BATCH_ROWS: '50', TALLY_SINK_BATCH_MS: '100' });
    const model = new CountsModel(sb.config.topics.counts, 4, 30, 1);
    await producer.send(model.next(600));
    const sink = bed.startSink(sb.env);
    await assertExact(ch, db, model, 60_000);

    const txp = await transactionalProducer(sb.config.kafka.brokers);
    try {
      await inTransaction(txp, model.next(300), 'commit');
      await inTransaction(txp, [model.bogus(1_000_000_000)], 'abort');
    } finally {
      await txp.disconnect();
    }
    await producer.send([
      { topic: sb.config.topics.counts, partition: 1, key: 'junk', value: Buffer.from('garbage{') },
      { topic: sb.config.topics.counts, partition: 2, key: 'junk', value: Buffer.from('{"type":"bogus"}') },
    ]);
    await producer.send(model.next(300));
    await producer.send(model.watermarkEveryPartition());
    await assertExact(ch, db, model, 60_000);

    assert.equal(await sink.stop(), 0, 'SIGTERM: clean exit');
    assert.equal(logLines(sink, 'sink.stopped_cleanly').length, 1);
    const poison = logLines(sink, 'sink.poison_record');
    assert.deepEqual(poison.map((l) => [l.partition, l.reason]).sort(), [[1, 'not_json'], [2, 'unknown_type']]);
    assert.ok(poison.every((l) => typeof l.offset === 'number' && l.topic === sb.config.topics.counts));
    // Every partition ended with a plain (non-transactional) record: the commit is exactly the end.
    for (const o of await committedAndEnd(sb.config)) assert.equal(o.committed, o.end, `partition ${o.partition} committed to the end`);
    const inserted = await queryRows<{ c: string }>(ch, `SELECT count() AS c FROM ${identifier(db)}.impression_counts WHERE inserted_at < toDateTime('2020-01-01 00:00:00')`);
    assert.equal(Number(inserted[0].c), 0, 'inserted_at gets its DEFAULT now()');
  });

  it('SIGTERM inserts and commits the open batch before exiting', async () => {
    // A batch that would only close after 10 min or 1M rows: only the SIGTERM flush writes it.
    const { sb, ch, producer, db } = await bed.setup('sinkterm', { TALLY_PARTITIONS: '4', TALLY_SINK_BATCH_ROWS: '1000000', TALLY_SINK_BATCH_MS: '600000' });
    const model = new CountsModel(sb.config.topics.counts, 4, 100, 2);
    await producer.send(model.next(2_000));
    await producer.send(model.watermarkEveryPartition());
    const sink = bed.startSink(sb.env);
    await eventually('the sink to read every record', async () =>
      metricValue(await scrapeMetrics(sink), 'tally_sink_records_consumed_total') === model.produced, 60_000, 200);
    assert.equal(await rawCount(ch, db), 0, 'nothing inserted before the batch closes');
    assert.equal(await sink.stop(), 0);
    await assertExact(ch, db, model, 5_000);
    for (const o of await committedAndEnd(sb.config)) assert.equal(o.committed, o.end, `partition ${o.partition} committed to the end`);
  });

  it('catches up a backlog of 100k distinct rows (throughput)', async () => {
    const { sb, ch, producer, db } = await bed.setup('sinkbulk', { TALLY_PARTITIONS: '8' });
    const model = new CountsModel(sb.config.topics.counts, 8, 12_500, 5, { tombstones: 0, watermarks: 0, sequential: true });
    // Each key once: 100k distinct rows.
    for (let i = 0; i < 10; i++) await producer.send(model.next(10_000));
    const expected = model.expectedRows().size;
    const sink = bed.startSink(sb.env);
    await eventually('the sink to join', async () => logLines(sink, 'sink.partitions_assigned').length > 0, 60_000, 50);
    const t0 = Date.now();
    await eventually('every row inserted', async () => (await rawCount(ch, db)) >= expected, 90_000, 100);
    const seconds = (Date.now() - t0) / 1000;
    await assertExact(ch, db, model, 30_000);
    const m = await scrapeMetrics(sink);
    const rows = metricValue(m, 'tally_sink_rows_inserted_total');
    const insertSeconds = metricValue(m, 'tally_sink_insert_duration_seconds_sum');
    const batches = metricValue(m, 'tally_sink_batches_total');
    process.stderr.write(`      [sink] ${expected} rows (${model.produced} records) in ${seconds.toFixed(2)} s from assignment: ${Math.round(expected / seconds)} rows/s end to end; `
      + `${batches} batches, ${Math.round(rows / insertSeconds)} rows/s while inserting\n`);
    assert.equal(await sink.stop(), 0);
  });
});
