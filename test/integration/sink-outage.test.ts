/**
 * `tally sink` and a ClickHouse it cannot reach (real Kafka, real ClickHouse): SIGTERM while no
 * ClickHouse answers commits nothing, and an outage mid-stream is waited out without skipping.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClickHouse, migrate } from '../../server/src/clickhouse/index.js';
import { loadConfig } from '../../server/src/config/index.js';
import { LocalClickHouse } from '../../server/src/stack/clickhouse-server.js';
import { eventually, sleep } from '../kit/harness.js';
import { assertExact, committedAndEnd, CountsModel, SinkTestBed } from './sink-fixtures.js';
import { metricValue } from '../kit/metrics.js';
import { logLines, scrapeMetrics, waitForLog } from '../kit/role-logs.js';

describe('tally sink: ClickHouse outages (real Kafka + ClickHouse)', function () {
  this.timeout(180_000);
  const bed = new SinkTestBed();

  afterEach(async function () {
    this.timeout(120_000);
    await bed.release();
  });

  it('SIGTERM while ClickHouse is unreachable: nothing is committed, the next sink inserts it all', async () => {
    const { sb, ch, producer, db } = await bed.setup('sinkdeadch', { TALLY_PARTITIONS: '4' });
    const model = new CountsModel(sb.config.topics.counts, 4, 50, 7);
    await producer.send(model.next(1_000));
    await producer.send(model.watermarkEveryPartition());
    // Nothing listens on port 1.
    const blind = bed.startSink({ ...sb.env, CLICKHOUSE_URL: 'http://127.0.0.1:1' });
    await eventually('the sink to report it waits for ClickHouse', async () =>
      metricValue(await scrapeMetrics(blind), 'tally_sink_waiting_for_clickhouse') === 1, 60_000, 200);
    const t0 = Date.now();
    assert.equal(await blind.stop(), 0);
    const stopMs = Date.now() - t0;
    assert.ok(stopMs < 15_000, `stopped within the shutdown grace (${stopMs} ms)`);
    assert.equal(logLines(blind, 'sink.stopped_with_unflushed_batch').length, 1);
    assert.equal(logLines(blind, 'sink.stopped_cleanly').length, 0);
    assert.equal(logLines(blind, 'sink.clickhouse_unavailable').length, 1);
    for (const o of await committedAndEnd(sb.config)) assert.ok(o.committed < 0, `partition ${o.partition}: nothing committed (${o.committed})`);
    const sink = bed.startSink(sb.env);
    await assertExact(ch, db, model, 60_000);
    assert.equal(await sink.stop(), 0);
  });

  it('waits out a ClickHouse outage (server stopped ~5 s mid-stream) and ends exact, without skipping', async function () {
    const base = loadConfig();
    if (base.clickhouse.external) this.skip();
    // A private ClickHouse on its own ports, so stopping it does not disturb tests sharing the stack.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-sink-ch-'));
    const { sb, producer } = await bed.setup('sinkoutage', { TALLY_PARTITIONS: '4', TALLY_SINK_BATCH_ROWS: '500', TALLY_SINK_BATCH_MS: '100' });
    const env: NodeJS.ProcessEnv = { ...sb.env, CLICKHOUSE_URL: undefined, TALLY_STACK_DIR: dir, TALLY_CLICKHOUSE_HTTP_PORT: '28323', TALLY_CLICKHOUSE_TCP_PORT: '29300' };
    const config = loadConfig(env);
    const lc = new LocalClickHouse(config);
    const say = (m: string) => process.stderr.write(`      [private clickhouse] ${m}\n`);
    await lc.start(say);
    const ch = bed.track(createClickHouse(config));
    const db = config.clickhouse.database;
    try {
      await migrate([ch], db);
      const model = new CountsModel(config.topics.counts, 4, 100, 4);
      await producer.send(model.next(3_000));
      const sink = bed.startSink(env);
      await assertExact(ch, db, model, 60_000);

      // Records keep coming until ClickHouse is back, so batches pile up against the outage.
      let keepProducing = true;
      const produced = (async () => {
        while (keepProducing) {
          await producer.send(model.next(300));
          await sleep(250);
        }
        await producer.send(model.watermarkEveryPartition());
      })();
      try {
        await eventually('the sink to read the new records', async () =>
          metricValue(await scrapeMetrics(sink), 'tally_sink_records_consumed_total') > 3_000, 30_000, 100);
        const t0 = Date.now();
        assert.equal(await lc.stop(), true, 'ClickHouse stopped');
        const downAt = Date.now();
        say(`stopped in ${downAt - t0} ms`);
        await eventually('the sink to report it waits for ClickHouse', async () =>
          metricValue(await scrapeMetrics(sink), 'tally_sink_waiting_for_clickhouse') === 1, 10_000, 200);
        // The outage itself: ClickHouse stays down about 5 s (a fault of a chosen length, not a wait).
        await sleep(Math.max(0, 5_000 - (Date.now() - downAt)));
        assert.ok(sink.alive, 'the sink survives the outage');
        await lc.start(say);
        await waitForLog(sink, 'sink.clickhouse_recovered', 60_000);
      } finally {
        keepProducing = false;
        await produced;
      }
      await assertExact(ch, db, model, 60_000);
      assert.ok(sink.alive);
      assert.equal(metricValue(await scrapeMetrics(sink), 'tally_sink_waiting_for_clickhouse'), 0);
      assert.ok(metricValue(await scrapeMetrics(sink), 'tally_sink_insert_failures_total') >= 1);
      assert.equal(logLines(sink, 'sink.clickhouse_unavailable').length, 1, 'one warning per outage');
      assert.equal(logLines(sink, 'sink.clickhouse_recovered').length, 1);
      const stray = sink.log().split('\n').filter((l) => l !== '' && !l.startsWith('{'));
      assert.deepEqual(stray.slice(0, 3), [], 'structured (JSON) log lines only');
      assert.equal(await sink.stop(), 0);
    } finally {
      if (!(await lc.ping().catch(() => false))) await lc.start(say).catch(() => undefined);
      await lc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
