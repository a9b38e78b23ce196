/**
 * `tally sink` as a real child process against the real broker and ClickHouse: highest version
 * per key, tombstones and aborted transactions ignored, poison records skipped, SIGTERM flushes,
 * SIGKILL mid-stream loses and duplicates nothing, a ClickHouse outage is waited out.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import Kafka from 'node-rdkafka';
import { encodeWatermark, encodeWindowRow, watermarkKey, type WindowRow } from '../../server/src/contracts/count-record.js';
import { createClickHouse, identifier, migrate, queryRows } from '../../server/src/clickhouse/index.js';
import { loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { kafkaError } from '../../server/src/errors/index.js';
import { DeliveringProducer, type OutgoingRecord } from '../../server/src/kafka/index.js';
import { LocalClickHouse } from '../../server/src/stack/clickhouse-server.js';
import { createSandbox, eventually, RoleProcess, sleep, type Sandbox } from '../kit/harness.js';

const BASE_MS = Date.UTC(2026, 0, 1, 0, 0, 0);

function cb<T = void>(fn: (done: (err: Kafka.LibrdKafkaError | null | undefined, v?: T) => void) => void, what: string): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(kafkaError(what, err)) : resolve(v as T))));
}

/** Deterministic PRNG (mulberry32), so a failing data set can be reproduced. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ExpectedRow {
  ws: number; we: number; advertiser_id: string; campaign_id: string; source_partition: number;
  impressions: number; spend_micros: number; duplicates: number; version: number; final: number; revised: number;
}

/**
 * What the aggregator would write to impression-counts, and what the table must hold: each
 * record a new version of a random key (counts derived from the version, so only the highest
 * version's row matches), some tombstones, a watermark per partition now and then.
 */
class CountsModel {
  private readonly keys: Array<{ ws: number; adv: string; cmp: string; p: number; key: string }> = [];
  private readonly latest = new Map<string, WindowRow>();
  private readonly watermarks = new Map<number, number>();
  private readonly random: () => number;
  private cursor = 0;
  produced = 0;

  /** `sequential`: keys in turn instead of at random, and no tombstones or watermarks (one version per key per round). */
  constructor(readonly topic: string, readonly partitions: number, keysPerPartition: number, seed: number,
    readonly opts = { tombstones: 0.08, watermarks: 0.04, sequential: false }) {
    this.random = rng(seed);
    for (let p = 0; p < partitions; p++) {
      for (let i = 0; i < keysPerPartition; i++) {
        const ws = BASE_MS + (i % 30) * 60_000;
        const adv = `adv-${i % 7}`;
        const cmp = `cmp-${p}-${i}`;
        this.keys.push({ ws, adv, cmp, p, key: `${ws}|${adv}|${cmp}|${p}` });
      }
    }
  }

  /** The next `n` records, applied to the model. */
  next(n: number): OutgoingRecord[] {
    const out: OutgoingRecord[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.opts.sequential ? this.keys[this.cursor++ % this.keys.length] : this.keys[Math.floor(this.random() * this.keys.length)];
      const roll = this.opts.sequential ? 1 : this.random();
      if (roll < this.opts.watermarks) {
        const wm = (this.watermarks.get(k.p) ?? BASE_MS) + 1 + Math.floor(this.random() * 1000);
        this.watermarks.set(k.p, wm);
        out.push({ topic: this.topic, partition: k.p, key: watermarkKey(k.p), value: encodeWatermark({ source_partition: k.p, watermark: wm, max_event_time: wm + 5_000, emitted_at: Date.now() }) });
      } else if (roll < this.opts.watermarks + this.opts.tombstones && this.latest.has(k.key)) {
        out.push({ topic: this.topic, partition: k.p, key: k.key, value: null });
      } else {
        const version = (this.latest.get(k.key)?.version ?? 0) + 1;
        const row = this.row(k, version);
        this.latest.set(k.key, row);
        out.push({ topic: this.topic, partition: k.p, key: k.key, value: encodeWindowRow(row) });
      }
    }
    this.produced += n;
    return out;
  }

  /** One watermark record per partition (so each partition ends with a non-transactional record). */
  watermarkEveryPartition(): OutgoingRecord[] {
    const out: OutgoingRecord[] = [];
    for (let p = 0; p < this.partitions; p++) {
      const wm = (this.watermarks.get(p) ?? BASE_MS) + 1_000;
      this.watermarks.set(p, wm);
      out.push({ topic: this.topic, partition: p, key: watermarkKey(p), value: encodeWatermark({ source_partition: p, watermark: wm, max_event_time: wm + 5_000, emitted_at: Date.now() }) });
    }
    this.produced += out.length;
    return out;
  }

  /** A row of `key` that the table must never show (e.g. from an aborted transaction). */
  bogus(version: number): OutgoingRecord {
    const k = this.keys[0];
    return { topic: this.topic, partition: k.p, key: k.key, value: encodeWindowRow({ ...this.row(k, version), impressions: 999_999 }) };
  }

  private row(k: { ws: number; adv: string; cmp: string; p: number }, version: number): WindowRow {
    return {
      windowStart: k.ws, windowEnd: k.ws + 60_000, advertiserId: k.adv, campaignId: k.cmp, sourcePartition: k.p,
      impressions: version * 3 + (k.p % 3), spendMicros: BigInt(version * 1_250 + k.p), duplicates: version % 4, version,
      final: version % 5 === 0, revised: version % 10 === 0,
    };
  }

  expectedRows(): Map<string, ExpectedRow> {
    const m = new Map<string, ExpectedRow>();
    for (const r of this.latest.values()) {
      m.set(`${r.windowStart / 1000}|${r.advertiserId}|${r.campaignId}|${r.sourcePartition}`, {
        ws: r.windowStart / 1000, we: r.windowEnd / 1000, advertiser_id: r.advertiserId, campaign_id: r.campaignId,
        source_partition: r.sourcePartition, impressions: r.impressions, spend_micros: Number(r.spendMicros), duplicates: r.duplicates,
        version: r.version, final: r.final ? 1 : 0, revised: r.revised ? 1 : 0,
      });
    }
    return m;
  }

  expectedWatermarks(): Map<number, number> {
    return new Map(this.watermarks);
  }
}

type RawRow = { [K in keyof ExpectedRow]: string | number };

async function tableRows(ch: ClickHouseClient, db: string): Promise<Map<string, ExpectedRow>> {
  const rows = await queryRows<RawRow>(ch, `SELECT toUnixTimestamp(window_start) AS ws, toUnixTimestamp(window_end) AS we, advertiser_id, campaign_id,
    source_partition, impressions, spend_micros, duplicates, version, final, revised FROM ${identifier(db)}.impression_counts FINAL`);
  const m = new Map<string, ExpectedRow>();
  for (const r of rows) {
    const row: ExpectedRow = {
      ws: Number(r.ws), we: Number(r.we), advertiser_id: String(r.advertiser_id), campaign_id: String(r.campaign_id),
      source_partition: Number(r.source_partition), impressions: Number(r.impressions), spend_micros: Number(r.spend_micros),
      duplicates: Number(r.duplicates), version: Number(r.version), final: Number(r.final), revised: Number(r.revised),
    };
    const key = `${row.ws}|${row.advertiser_id}|${row.campaign_id}|${row.source_partition}`;
    assert.ok(!m.has(key), `FINAL returned ${key} twice`);
    m.set(key, row);
  }
  return m;
}

async function tableWatermarks(ch: ClickHouseClient, db: string): Promise<Map<number, number>> {
  const rows = await queryRows<{ p: number | string; w: number | string }>(ch, `SELECT source_partition AS p, watermark_ms AS w FROM ${identifier(db)}.partition_watermarks FINAL`);
  return new Map(rows.map((r) => [Number(r.p), Number(r.w)]));
}

/** Differences between the table and the model ('' when exact). */
function diff(actual: Map<string, ExpectedRow>, expected: Map<string, ExpectedRow>): string {
  const problems: string[] = [];
  for (const [k, e] of expected) {
    const a = actual.get(k);
    if (!a) problems.push(`missing ${k} (v${e.version})`);
    else if (JSON.stringify(a) !== JSON.stringify(e)) problems.push(`${k}: got v${a.version} ${JSON.stringify(a)}, want v${e.version} ${JSON.stringify(e)}`);
  }
  for (const k of actual.keys()) if (!expected.has(k)) problems.push(`unexpected ${k}`);
  return problems.length === 0 ? '' : `${problems.length} differences, e.g.\n  ${problems.slice(0, 5).join('\n  ')}`;
}

async function assertExact(ch: ClickHouseClient, db: string, model: CountsModel, timeoutMs: number): Promise<void> {
  const expected = model.expectedRows();
  const expectedWm = model.expectedWatermarks();
  let last = '';
  try {
    await eventually('the table to match the model exactly', async () => {
      last = diff(await tableRows(ch, db), expected);
      if (last !== '') return false;
      const wms = await tableWatermarks(ch, db);
      last = JSON.stringify([...wms]) === JSON.stringify([...expectedWm].sort((a, b) => a[0] - b[0])) ? ''
        : `watermarks: got ${JSON.stringify([...wms])}, want ${JSON.stringify([...expectedWm])}`;
      return last === '';
    }, timeoutMs, 250);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${last}`);
  }
}

async function rawCount(ch: ClickHouseClient, db: string): Promise<number> {
  return Number((await queryRows<{ c: string }>(ch, `SELECT count() AS c FROM ${identifier(db)}.impression_counts`))[0].c);
}

/** pino lines of a role's log with the given msg. */
function logLines(proc: RoleProcess, msg: string): Array<Record<string, unknown>> {
  return proc.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);
}

async function metricsOf(proc: RoleProcess): Promise<string> {
  let port: number | undefined;
  await eventually('the sink to log its metrics port', async () => {
    port = logLines(proc, 'sink.metrics_listening')[0]?.metricsPort as number | undefined;
    return port !== undefined;
  }, 30_000, 100);
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

function metricValue(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function committedAndEnd(config: TallyConfig): Promise<Array<{ partition: number; committed: number; end: number }>> {
  const c = new Kafka.KafkaConsumer({
    'metadata.broker.list': config.kafka.brokers, 'group.id': config.groups.sink, 'enable.auto.commit': false, 'isolation.level': 'read_committed', log_level: 3,
  }, {});
  await cb((d) => c.connect({ timeout: 10_000 }, (e) => d(e)), 'connect');
  try {
    const topic = config.topics.counts;
    const tps = Array.from({ length: config.partitions }, (_, partition) => ({ topic, partition }));
    const committed = await cb<Kafka.TopicPartitionOffset[]>((d) => c.committed(tps, 10_000, d), 'committed');
    const out = [];
    for (const tp of committed) {
      const wm = await cb<Kafka.WatermarkOffsets>((d) => c.queryWatermarkOffsets(topic, tp.partition, 10_000, d), 'watermarks');
      // No committed offset: node-rdkafka leaves `offset` out (librdkafka's -1001).
      out.push({ partition: tp.partition, committed: (tp.offset as number | undefined) ?? -1001, end: wm.highOffset });
    }
    return out.sort((a, b) => a.partition - b.partition);
  } finally {
    await new Promise<void>((r) => c.disconnect(() => r()));
  }
}

async function transactionalProducer(brokers: string): Promise<Kafka.Producer> {
  const p = new Kafka.Producer({ 'metadata.broker.list': brokers, 'transactional.id': `sink-test-${crypto.randomUUID()}`, 'enable.idempotence': true, log_level: 3 });
  await cb((d) => p.connect({ timeout: 10_000 }, (e) => d(e)), 'connect');
  p.setPollInterval(20);
  await cb((d) => p.initTransactions(30_000, d), 'initTransactions');
  return p;
}

async function inTransaction(p: Kafka.Producer, records: OutgoingRecord[], outcome: 'commit' | 'abort'): Promise<void> {
  await cb((d) => p.beginTransaction(d), 'begin');
  for (const r of records) p.produce(r.topic, r.partition, r.value, typeof r.key === 'string' ? Buffer.from(r.key) : r.key);
  await cb((d) => p.flush(10_000, d), 'flush');
  if (outcome === 'commit') await cb((d) => p.commitTransaction(10_000, d), 'commit');
  else await cb((d) => p.abortTransaction(10_000, d), 'abort');
}

describe('tally sink (real Kafka + ClickHouse)', function () {
  this.timeout(180_000);
  const sandboxes: Sandbox[] = [];
  const procs: RoleProcess[] = [];
  const clients: ClickHouseClient[] = [];
  const producers: DeliveringProducer[] = [];

  async function setup(name: string, overrides: Record<string, string>): Promise<{ sb: Sandbox; ch: ClickHouseClient; producer: DeliveringProducer; db: string }> {
    const sb = await createSandbox(name, overrides);
    sandboxes.push(sb);
    const ch = createClickHouse(sb.config);
    clients.push(ch);
    const producer = new DeliveringProducer(sb.config.kafka.brokers);
    await producer.connect();
    producers.push(producer);
    return { sb, ch, producer, db: sb.config.clickhouse.database };
  }

  function startSink(env: NodeJS.ProcessEnv): RoleProcess {
    const p = new RoleProcess('sink', env);
    procs.push(p);
    return p;
  }

  afterEach(async function () {
    this.timeout(120_000);
    for (const p of procs.splice(0)) await p.kill();
    for (const p of producers.splice(0)) await p.disconnect().catch(() => undefined);
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
    for (const sb of sandboxes.splice(0)) await sb.cleanup();
  });

  it('keeps the highest version per key across batches; tombstones, aborted transactions and poison records change nothing', async () => {
    const { sb, ch, producer, db } = await setup('sinkbasic', { TALLY_PARTITIONS: '4', TALLY_SINK_BATCH_ROWS: '50', TALLY_SINK_BATCH_MS: '100' });
    const model = new CountsModel(sb.config.topics.counts, 4, 30, 1);
    await producer.send(model.next(600));
    const sink = startSink(sb.env);
    await assertExact(ch, db, model, 60_000);

    const txp = await transactionalProducer(sb.config.kafka.brokers);
    try {
      await inTransaction(txp, model.next(300), 'commit');
      await inTransaction(txp, [model.bogus(1_000_000_000)], 'abort');
    } finally {
      await new Promise<void>((r) => txp.disconnect(() => r()));
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
    const { sb, ch, producer, db } = await setup('sinkterm', { TALLY_PARTITIONS: '4', TALLY_SINK_BATCH_ROWS: '1000000', TALLY_SINK_BATCH_MS: '600000' });
    const model = new CountsModel(sb.config.topics.counts, 4, 100, 2);
    await producer.send(model.next(2_000));
    await producer.send(model.watermarkEveryPartition());
    const sink = startSink(sb.env);
    await eventually('the sink to read every record', async () =>
      metricValue(await metricsOf(sink), 'tally_sink_records_consumed_total') === model.produced, 60_000, 200);
    assert.equal(await rawCount(ch, db), 0, 'nothing inserted before the batch closes');
    assert.equal(await sink.stop(), 0);
    await assertExact(ch, db, model, 5_000);
    for (const o of await committedAndEnd(sb.config)) assert.equal(o.committed, o.end, `partition ${o.partition} committed to the end`);
  });

  it('SIGTERM while ClickHouse is unreachable: nothing is committed, the next sink inserts it all', async () => {
    const { sb, ch, producer, db } = await setup('sinkdeadch', { TALLY_PARTITIONS: '4' });
    const model = new CountsModel(sb.config.topics.counts, 4, 50, 7);
    await producer.send(model.next(1_000));
    await producer.send(model.watermarkEveryPartition());
    // Nothing listens on port 1.
    const blind = startSink({ ...sb.env, CLICKHOUSE_URL: 'http://127.0.0.1:1' });
    await eventually('the sink to report it waits for ClickHouse', async () =>
      metricValue(await metricsOf(blind), 'tally_sink_waiting_for_clickhouse') === 1, 60_000, 200);
    const t0 = Date.now();
    assert.equal(await blind.stop(), 0);
    const stopMs = Date.now() - t0;
    assert.ok(stopMs < 15_000, `stopped within the shutdown grace (${stopMs} ms)`);
    assert.equal(logLines(blind, 'sink.stopped_with_unflushed_batch').length, 1);
    assert.equal(logLines(blind, 'sink.stopped_cleanly').length, 0);
    assert.equal(logLines(blind, 'sink.clickhouse_unavailable').length, 1);
    for (const o of await committedAndEnd(sb.config)) assert.ok(o.committed < 0, `partition ${o.partition}: nothing committed (${o.committed})`);
    const sink = startSink(sb.env);
    await assertExact(ch, db, model, 60_000);
    assert.equal(await sink.stop(), 0);
  });

  it('SIGKILL at random moments mid-stream (50k records, 8 partitions): the table ends exact', async () => {
    const { sb, ch, producer, db } = await setup('sinkkill', { TALLY_PARTITIONS: '8', TALLY_SINK_BATCH_ROWS: '1000', TALLY_SINK_BATCH_MS: '250', LOG_LEVEL: 'debug' });
    const model = new CountsModel(sb.config.topics.counts, 8, 200, 3);
    const TOTAL = 50_000;
    const HELD_BACK = 10_000;
    let sink = startSink(sb.env);
    let killsDone = false;
    // 40k records paced over the kill phase, the last 10k after it: the last sink has work too.
    const produced = (async () => {
      while (model.produced < TOTAL - HELD_BACK) {
        await producer.send(model.next(500));
        await sleep(150 + Math.floor(Math.random() * 300));
      }
      while (!killsDone) await sleep(100);
      while (model.produced < TOTAL) await producer.send(model.next(1_000));
      await producer.send(model.watermarkEveryPartition());
    })();
    const killed: RoleProcess[] = [];
    try {
      for (let k = 0; k < 3; k++) {
        // Once this sink is inserting, kill it at a random moment.
        const current = sink;
        await eventually('the sink to insert', async () => logLines(current, 'sink.batch_inserted').length > 0, 60_000, 50);
        await sleep(Math.floor(Math.random() * 1_000));
        await sink.kill();
        killed.push(sink);
        sink = startSink(sb.env);
      }
    } finally {
      killsDone = true;
    }
    await produced;
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
    const { sb, ch, producer, db } = await setup('sinkscale', { TALLY_PARTITIONS: '8', TALLY_SINK_BATCH_ROWS: '1000', TALLY_SINK_BATCH_MS: '200', LOG_LEVEL: 'debug' });
    const model = new CountsModel(sb.config.topics.counts, 8, 100, 6);
    const a = startSink(sb.env);
    const b = startSink(sb.env);
    let phase = 0;
    const produced = (async () => {
      for (let i = 0; i < 60 || phase < 2; i++) {
        await producer.send(model.next(300));
        await sleep(100);
      }
      await producer.send(model.watermarkEveryPartition());
    })();
    const split = async (p: RoleProcess) => (logLines(p, 'sink.partitions_assigned').at(-1)?.partitions as number[] | undefined)?.length ?? 0;
    await eventually('both sinks to own partitions', async () => (await split(a)) > 0 && (await split(b)) > 0 && (await split(a)) + (await split(b)) === 8, 60_000, 100);
    await eventually('both sinks to insert', async () => logLines(a, 'sink.batch_inserted').length > 0 && logLines(b, 'sink.batch_inserted').length > 0, 30_000, 100);
    assert.equal(await a.stop(), 0, 'the leaving sink exits cleanly');
    phase = 1;
    await eventually('the other sink to take every partition', async () => (await split(b)) === 8, 30_000, 100);
    const c = startSink(sb.env);
    await eventually('the new sink to get partitions', async () => (await split(c)) > 0, 60_000, 100);
    phase = 2;
    await produced;
    await assertExact(ch, db, model, 60_000);
    assert.ok(b.alive && c.alive);
    assert.equal(await b.stop(), 0);
    assert.equal(await c.stop(), 0);
    for (const o of await committedAndEnd(sb.config)) assert.equal(o.committed, o.end, `partition ${o.partition} committed to the end`);
  });

  it('waits out a ClickHouse outage (server stopped ~5 s mid-stream) and ends exact, without skipping', async function () {
    const base = loadConfig();
    if (base.clickhouse.external) this.skip();
    // A private ClickHouse on its own ports, so stopping it does not disturb tests sharing the stack.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-sink-ch-'));
    const { sb, producer } = await setup('sinkoutage', { TALLY_PARTITIONS: '4', TALLY_SINK_BATCH_ROWS: '500', TALLY_SINK_BATCH_MS: '100' });
    const env: NodeJS.ProcessEnv = { ...sb.env, CLICKHOUSE_URL: undefined, TALLY_STACK_DIR: dir, TALLY_CLICKHOUSE_HTTP_PORT: '28323', TALLY_CLICKHOUSE_TCP_PORT: '29300' };
    const config = loadConfig(env);
    const lc = new LocalClickHouse(config);
    const say = (m: string) => process.stderr.write(`      [private clickhouse] ${m}\n`);
    await lc.start(say);
    const ch = createClickHouse(config);
    clients.push(ch);
    const db = config.clickhouse.database;
    try {
      await migrate(ch, db);
      const model = new CountsModel(config.topics.counts, 4, 100, 4);
      await producer.send(model.next(3_000));
      const sink = startSink(env);
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
        await sleep(700);
        const t0 = Date.now();
        assert.equal(await lc.stop(), true, 'ClickHouse stopped');
        const downAt = Date.now();
        say(`stopped in ${downAt - t0} ms`);
        await eventually('the sink to report it waits for ClickHouse', async () =>
          metricValue(await metricsOf(sink), 'tally_sink_waiting_for_clickhouse') === 1, 10_000, 200);
        await sleep(Math.max(0, 5_000 - (Date.now() - downAt)));
        assert.ok(sink.alive, 'the sink survives the outage');
        await lc.start(say);
        await sleep(1_000);
      } finally {
        keepProducing = false;
        await produced;
      }
      await assertExact(ch, db, model, 60_000);
      assert.ok(sink.alive);
      assert.equal(metricValue(await metricsOf(sink), 'tally_sink_waiting_for_clickhouse'), 0);
      assert.ok(metricValue(await metricsOf(sink), 'tally_sink_insert_failures_total') >= 1);
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

  it('catches up a backlog of 100k distinct rows (throughput)', async () => {
    const { sb, ch, producer, db } = await setup('sinkbulk', { TALLY_PARTITIONS: '8' });
    const model = new CountsModel(sb.config.topics.counts, 8, 12_500, 5, { tombstones: 0, watermarks: 0, sequential: true });
    // Each key once: 100k distinct rows.
    for (let i = 0; i < 10; i++) await producer.send(model.next(10_000));
    const expected = model.expectedRows().size;
    const sink = startSink(sb.env);
    await eventually('the sink to join', async () => logLines(sink, 'sink.partitions_assigned').length > 0, 60_000, 50);
    const t0 = Date.now();
    await eventually('every row inserted', async () => (await rawCount(ch, db)) >= expected, 90_000, 100);
    const seconds = (Date.now() - t0) / 1000;
    await assertExact(ch, db, model, 30_000);
    const m = await metricsOf(sink);
    const rows = metricValue(m, 'tally_sink_rows_inserted_total');
    const insertSeconds = metricValue(m, 'tally_sink_insert_duration_seconds_sum');
    const batches = metricValue(m, 'tally_sink_batches_total');
    process.stderr.write(`      [sink] ${expected} rows (${model.produced} records) in ${seconds.toFixed(2)} s from assignment: ${Math.round(expected / seconds)} rows/s end to end; `
      + `${batches} batches, ${Math.round(rows / insertSeconds)} rows/s while inserting\n`);
    assert.equal(await sink.stop(), 0);
  });
});
