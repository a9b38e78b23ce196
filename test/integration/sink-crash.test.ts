/**
 * `tally sink` processes dying and joining mid-stream (real Kafka + ClickHouse): SIGKILLs at random
 * moments and a scale-out with one sink leaving and another joining; the table always ends exact
 * and every partition committed to its end.
 */
import assert from 'node:assert/strict';
import { eventually, type RoleProcess, sleep } from '../kit/harness.js';
import { assertExact, committedAndEnd, CountsModel, rawCount, SinkTestBed } from './sink-fixtures.js';
import { latestPartitions, logLines } from '../kit/role-logs.js';

describe('tally sink: crashes and rebalances (real Kafka + ClickHouse)', function () {
  this.timeout(180_000);
  const bed = new SinkTestBed();

  afterEach(async function () {
    this.timeout(120_000);
    await bed.release();
  });

  it('SIGKILL at random moments mid-stream (50k records, 8 partitions): the table ends exact', async () => {
    const { sb, ch, producer, db } = await bed.setup('sinkkill', { TALLY_PARTITIONS: '8', TALLY_SINK_BATCH_ROWS: '1000', TALLY_SINK_BATCH_MS: '250', LOG_LEVEL: 'debug' });
    const model = new CountsModel(sb.config.topics.counts, 8, 200, 3);
    const TOTAL = 50_000;
    const HELD_BACK = 10_000;
    let sink = bed.startSink(sb.env);
    // 40k records paced over the kill phase (traffic pacing: sinks die while records keep coming),
    // the last 10k once the kills are done: the last sink has work too.
    const paced = (async () => {
      while (model.produced < TOTAL - HELD_BACK) {
        await producer.send(model.next(500));
        await sleep(150 + Math.floor(Math.random() * 300));
      }
    })();
    const killed: RoleProcess[] = [];
    try {
      for (let k = 0; k < 3; k++) {
        // Once this sink is inserting, kill it at a random moment (the fault's point is meant to be random).
        const current = sink;
        await eventually('the sink to insert', async () => logLines(current, 'sink.batch_inserted').length > 0, 60_000, 50);
        await sleep(Math.floor(Math.random() * 1_000));
        await sink.kill();
        killed.push(sink);
        sink = bed.startSink(sb.env);
      }
    } finally {
      await paced;
    }
    while (model.produced < TOTAL) await producer.send(model.next(1_000));
    await producer.send(model.watermarkEveryPartition());
    await assertExact(ch, db, model, 90_000);
    assert.ok(sink.alive);
    assert.ok(logLines(sink, 'sink.batch_inserted').length > 0, 'the last sink inserted the held-back records');
    assert.equal(await sink.stop(), 0);
    for (const o of await committedAndEnd(sb.config)) assert.equal(o.committed, o.end, `partition ${o.partition} committed to the end`);
    const raw = await rawCount(ch, db);
    const batchesBeforeKill = killed.map((k) => logLines(k, 'sink.batch_inserted').length);
    process.stderr.write(`      [sink] ${model.produced} records, killed after ${batchesBeforeKill.join(', ')} batches; ${raw} rows before merge, ${model.expectedRows().size} after FINAL\n`);
  });

  it('scale-out: two sinks share the partitions, one leaves and another joins mid-stream; the table ends exact', async () => {
    const { sb, ch, producer, db } = await bed.setup('sinkscale', { TALLY_PARTITIONS: '8', TALLY_SINK_BATCH_ROWS: '1000', TALLY_SINK_BATCH_MS: '200', LOG_LEVEL: 'debug' });
    const model = new CountsModel(sb.config.topics.counts, 8, 100, 6);
    const a = bed.startSink(sb.env);
    const b = bed.startSink(sb.env);
    let phase = 0;
    // Traffic pacing: records keep coming until the new sink owns partitions.
    const produced = (async () => {
      for (let i = 0; i < 60 || phase < 2; i++) {
        await producer.send(model.next(300));
        await sleep(100);
      }
      await producer.send(model.watermarkEveryPartition());
    })();
    const split = (p: RoleProcess) => latestPartitions(p, 'sink.partitions_assigned').length;
    await eventually('both sinks to own partitions', async () => split(a) > 0 && split(b) > 0 && split(a) + split(b) === 8, 60_000, 100);
    await eventually('both sinks to insert', async () => logLines(a, 'sink.batch_inserted').length > 0 && logLines(b, 'sink.batch_inserted').length > 0, 30_000, 100);
    assert.equal(await a.stop(), 0, 'the leaving sink exits cleanly');
    phase = 1;
    await eventually('the other sink to take every partition', async () => split(b) === 8, 30_000, 100);
    const c = bed.startSink(sb.env);
    await eventually('the new sink to get partitions', async () => split(c) > 0, 60_000, 100);
    phase = 2;
    await produced;
    await assertExact(ch, db, model, 60_000);
    assert.ok(b.alive && c.alive);
    assert.equal(await b.stop(), 0);
    assert.equal(await c.stop(), 0);
    for (const o of await committedAndEnd(sb.config)) assert.equal(o.committed, o.end, `partition ${o.partition} committed to the end`);
  });
});
