import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { createClickHouse, identifier, queryRows, stringLiteral, uintLiteral } from '../../server/src/clickhouse/index.js';
import { DIMENSIONS, OTHER_VALUE } from '../../server/src/contracts/dimensions.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import { homePartition } from '../../server/src/impression/index.js';
import {
  buildEventPlan, formatVerifyReport, generate, planContext, readDeadLetters, readTopicToEnd, readTruth, verify,
  type GenerateProgress, type GroundTruth, type VerifyResult,
} from '../../server/src/tools/index.js';
import { artifactsDir, createSandbox, RoleProcess, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';

function waitExit(p: RoleProcess, timeoutMs: number): Promise<number | null> {
  if (p.child.exitCode !== null) return Promise.resolve(p.child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${p.role} did not exit within ${timeoutMs} ms:\n${p.log()}`)), timeoutMs);
    p.child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** A row of impression_breakdowns as the sink inserts it (JSONEachRow, times in seconds). */
interface BreakdownInsert {
  window_start: number;
  window_end: number;
  advertiser_id: string;
  campaign_id: string;
  source_partition: number;
  dimension: string;
  value: string;
  impressions: number;
  spend_micros: string;
  version: number;
}

function insertBreakdowns(ch: ClickHouseClient, database: string, values: BreakdownInsert[]): Promise<unknown> {
  return ch.insert({ table: `${identifier(database)}.impression_breakdowns`, values, format: 'JSONEachRow' });
}

/**
 * The truth's breakdowns as impression_breakdowns rows of one source partition: `share` says which
 * part of each value's impressions and spend this partition holds.
 */
function breakdownRowsOf(truth: GroundTruth, part: number, version: number, share: (n: number, spend: bigint) => [number, bigint]): BreakdownInsert[] {
  return truth.rows.flatMap((r) => DIMENSIONS.flatMap((dimension) => Object.entries(r.breakdowns?.[dimension] ?? {}).map(([value, [n, spend]]) => {
    const [imps, micros] = share(n, BigInt(spend));
    return {
      window_start: r.windowStart / 1000, window_end: (r.windowStart + truth.windowMs) / 1000, advertiser_id: r.advertiserId, campaign_id: r.campaignId,
      source_partition: part, dimension, value, impressions: imps, spend_micros: String(micros), version,
    };
  })));
}

/** Multiset of (partition, key, value) as text keys. */
function tally(into: Map<string, number>, partition: number, key: string | null, value: string): void {
  const k = `${partition}\u0000${key ?? '\u0001'}\u0000${value}`;
  into.set(k, (into.get(k) ?? 0) + 1);
}

describe('ground-truth tools (real Kafka and ClickHouse)', function () {
  this.timeout(180_000);
  const sandboxes: Sandbox[] = [];
  const sandbox = async (name: string) => {
    const sb = await createSandbox(name);
    sandboxes.push(sb);
    return sb;
  };
  after(async () => {
    for (const sb of sandboxes) await sb.cleanup();
  });

  it('generate produces every planned record once; home-mode records land on their murmur2 home partition', async () => {
    const sb = await sandbox('toolsgen');
    const { config } = sb;
    // The late part of the run waits for an aggregator's watermark; the aggregator writes nothing to the input topic.
    const agg = new RoleProcess('aggregator', sb.env);
    const now = Date.now();
    const options = { count: 2000, idPrefix: 'itgen-', seed: 20251126, keyMode: 'mixed' as const, bad: 18, tooLate: 5, lateWithinHorizon: 10 };
    const progress: GenerateProgress[] = [];
    const truth = await generate(config, { ...options, now, batch: 300 }, (p) => progress.push(p)).finally(() => agg.stop());
    assert.equal(progress.at(-1)?.phase, 'done');
    assert.equal(progress.at(-1)?.sent, truth.counts.sent);

    // The same seed and start rebuild the same plan: what must be on the topic, record for record.
    const plan = buildEventPlan(options, planContext(config, now));
    assert.deepEqual(plan.truth, truth);
    const expected = new Map<string, number>();
    let homeMode = 0;
    for (const r of plan.records) {
      if (r.partition === null) homeMode++;
      const partition = r.partition ?? homePartition(r.key as string, config.partitions);
      tally(expected, partition, r.key, r.value);
    }
    assert.ok(homeMode > 600, `${homeMode} home-mode records`);

    const actual = new Map<string, number>();
    const read = await readTopicToEnd(config.kafka.brokers, config.topics.impressions, (m) => {
      const key = m.key === null || m.key === undefined ? null : m.key.toString();
      tally(actual, m.partition, key, m.value?.toString('utf8') ?? '');
    }, { timeoutMs: 60_000 });
    assert.equal(read.messages, truth.counts.sent);
    assert.equal(read.ends.reduce((s, e) => s + e, 0), truth.counts.sent);
    // Equal multisets: librdkafka's murmur2_random partitioner chose homePartition() for every keyed record.
    const missing = [...expected].filter(([k, n]) => actual.get(k) !== n);
    assert.equal(missing.length, 0, `${missing.length} records not where expected, e.g. ${JSON.stringify(missing[0]?.[0].slice(0, 80))}`);
    assert.equal(actual.size, expected.size);
  });

  it('verify passes on exact ClickHouse rows and names the key of a one-off difference', async () => {
    const sb = await sandbox('toolsverify');
    const { config } = sb;
    const truth = buildEventPlan({ count: 400, idPrefix: 'itv_', seed: 5, tooLate: 2, lateWithinHorizon: 3 }, planContext(config, Date.now())).truth;
    const db = identifier(config.clickhouse.database);
    const ch = createClickHouse(config);
    const insert = async (rows: Array<{ ws: number; adv: string; cmp: string; part: number; imps: number; spend: number; version: number }>) => {
      const values = rows.map((r) => `(toDateTime(${uintLiteral(r.ws / 1000)}), toDateTime(${uintLiteral((r.ws + truth.windowMs) / 1000)}), `
        + `${stringLiteral(r.adv)}, ${stringLiteral(r.cmp)}, ${uintLiteral(r.part)}, ${uintLiteral(r.imps)}, ${uintLiteral(r.spend)}, 0, ${uintLiteral(r.version)}, 0, 0)`);
      await ch.command({
        query: `INSERT INTO ${db}.impression_counts (window_start, window_end, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, version, final, revised) VALUES ${values.join(', ')}`,
      });
    };
    try {
      // Each truth row split over two source partitions, written first with a stale version (FINAL must drop it).
      const stale = truth.rows.map((r) => ({ ws: r.windowStart, adv: r.advertiserId, cmp: r.campaignId, part: 0, imps: r.impressions + 7, spend: r.spendMicros + 7, version: 1 }));
      await insert(stale);
      const split = truth.rows.flatMap((r) => {
        const a = Math.floor(r.impressions / 2);
        const s = Math.floor(r.spendMicros / 3);
        return [
          { ws: r.windowStart, adv: r.advertiserId, cmp: r.campaignId, part: 0, imps: a, spend: s, version: 2 },
          { ws: r.windowStart, adv: r.advertiserId, cmp: r.campaignId, part: 5, imps: r.impressions - a, spend: r.spendMicros - s, version: 1 },
        ];
      });
      await insert(split);
      // Another run's rows in the same table: outside the prefix (itv_ must not match itvX: '_' is escaped in LIKE).
      await insert([{ ws: truth.rows[0].windowStart, adv: 'itvXadv-1', cmp: 'itvXadv-1-cmp-1', part: 1, imps: 3, spend: 300, version: 1 }]);
      // The breakdowns alike: a stale version, then each value split over partitions 0 and 5, and another run's value.
      const database = config.clickhouse.database;
      await insertBreakdowns(ch, database, breakdownRowsOf(truth, 0, 1, (n, spend) => [n + 7, spend + 7n]));
      await insertBreakdowns(ch, database, [
        ...breakdownRowsOf(truth, 0, 2, (n, spend) => [Math.floor(n / 2), spend / 3n]),
        ...breakdownRowsOf(truth, 5, 1, (n, spend) => [n - Math.floor(n / 2), spend - spend / 3n]),
      ]);
      await insertBreakdowns(ch, database, [{
        window_start: truth.rows[0].windowStart / 1000, window_end: (truth.rows[0].windowStart + truth.windowMs) / 1000,
        advertiser_id: 'itvXadv-1', campaign_id: 'itvXadv-1-cmp-1', source_partition: 1, dimension: 'country', value: 'DE', impressions: 3, spend_micros: '300', version: 1,
      }]);

      const ok = await verify(config, truth, { timeoutMs: 10_000, intervalMs: 200 });
      assert.equal(ok.ok, true, formatVerifyReport(ok));
      assert.equal(ok.actual.impressions, String(truth.counts.unique));
      assert.equal(ok.differences.length, 0);
      assert.deepEqual(ok.breakdowns.dimensions, [...DIMENSIONS], 'the default TALLY_DIMENSIONS, every one compared');
      assert.deepEqual([ok.breakdowns.exact, ok.breakdowns.folded], [truth.rows.length * DIMENSIONS.length, 0]);

      // One impression too many in one key (a newer version of one partition's row).
      const target = truth.rows[Math.floor(truth.rows.length / 2)];
      const a = Math.floor(target.impressions / 2);
      await insert([{ ws: target.windowStart, adv: target.advertiserId, cmp: target.campaignId, part: 0, imps: a + 1, spend: Math.floor(target.spendMicros / 3), version: 3 }]);
      const bad = await verify(config, truth, { timeoutMs: 1_500, intervalMs: 300 });
      assert.equal(bad.ok, false);
      assert.ok(bad.attempts >= 2, 'it re-polled before giving up');
      assert.deepEqual(bad.differences, [{
        windowStart: target.windowStart, advertiserId: target.advertiserId, campaignId: target.campaignId, kind: 'different',
        expectedImpressions: String(target.impressions), actualImpressions: String(target.impressions + 1),
        expectedSpendMicros: String(target.spendMicros), actualSpendMicros: String(target.spendMicros),
      }]);
      assert.deepEqual(bad.breakdowns.differences, [], 'the breakdowns are still right');
      assert.equal(BigInt(bad.actual.impressions) - BigInt(bad.expected.impressions), 1n);
      const report = formatVerifyReport(bad);
      assert.match(report, new RegExp(target.campaignId));
      assert.match(report, /MISMATCH/);
    } finally {
      await ch.close();
    }
  });

  it('tally generate, the pipeline and tally verify agree on breakdowns (named and folded into `other`); a wrong breakdown row fails naming its dimension and value', async function () {
    this.timeout(360_000);
    const sb = await sandbox('toolsbreak');
    const pipeline = new Pipeline(sb);
    fs.mkdirSync(artifactsDir, { recursive: true });
    const truthFile = path.join(artifactsDir, `${sb.env.TALLY_TOPIC_PREFIX}truth.json`);
    const ch = createClickHouse(sb.config);
    const db = identifier(sb.config.clickhouse.database);
    try {
      pipeline.startSink();
      // 10 values per (window, campaign, partition): creatives (20) and publishers (50) fold into `other`, countries (8) and devices (4) do not.
      pipeline.startAggregator('agg-1', { TALLY_DIMENSION_LIMIT: '10' });
      const gen = new RoleProcess('generate', sb.env, [
        '--count', '4000', '--advertisers', '1', '--campaigns', '2', '--id-prefix', 'bd-', '--seed', '15', '--duplicates', '0.3',
        '--late-within-horizon', '20', '--too-late', '2', '--bad', '9', '--truth', truthFile, '--quiet',
      ]);
      assert.equal(await waitExit(gen, 180_000), 0, gen.log());
      const truth = readTruth(truthFile);
      assert.ok(truth.rows.every((r) => r.breakdowns !== undefined), 'the truth file carries breakdowns');

      const ver = new RoleProcess('verify', sb.env, ['--truth', truthFile, '--timeout', '120', '--stable', '2', '--json', '--quiet']);
      assert.equal(await waitExit(ver, 180_000), 0, `${ver.log()}\n${pipeline.logs()}`);
      const passed = JSON.parse(ver.log()) as VerifyResult;
      assert.deepEqual(passed.breakdowns.dimensions, [...DIMENSIONS]);
      assert.deepEqual(passed.breakdowns.differences, []);
      assert.ok(passed.breakdowns.folded > 0 && passed.breakdowns.exact > 0, `folded ${passed.breakdowns.folded}, value by value ${passed.breakdowns.exact}`);
      const others = await queryRows<{ dimension: string; n: string }>(ch,
        `SELECT dimension, count() AS n FROM ${db}.impression_breakdowns FINAL WHERE value = ${stringLiteral(OTHER_VALUE)} GROUP BY dimension ORDER BY dimension`);
      assert.deepEqual(others.map((r) => r.dimension), ['creative_id', 'publisher_id'], 'the limit folds only the dimensions with more values');

      // One country of one row counted once too often: a newer version of that partition's value row.
      const [victim] = await queryRows<{ ws: string; we: string; adv: string; cmp: string; part: string; value: string; imps: string; spend: string; version: string }>(ch,
        `SELECT toUnixTimestamp(window_start) AS ws, toUnixTimestamp(window_end) AS we, advertiser_id AS adv, campaign_id AS cmp, source_partition AS part, `
        + `value, impressions AS imps, spend_micros AS spend, version FROM ${db}.impression_breakdowns FINAL `
        + `WHERE dimension = 'country' AND value != 'unknown' ORDER BY window_start, campaign_id, value LIMIT 1`);
      await insertBreakdowns(ch, sb.config.clickhouse.database, [{
        window_start: Number(victim.ws), window_end: Number(victim.we), advertiser_id: victim.adv, campaign_id: victim.cmp, source_partition: Number(victim.part),
        dimension: 'country', value: victim.value, impressions: Number(victim.imps) + 1, spend_micros: victim.spend, version: Number(victim.version) + 1_000_000,
      }]);
      const bad = new RoleProcess('verify', sb.env, ['--truth', truthFile, '--timeout', '1', '--quiet']);
      assert.equal(await waitExit(bad, 60_000), 1, bad.log());
      const report = bad.log();
      assert.match(report, new RegExp(`${victim.cmp}\\s+country\\s+${victim.value}\\s+different`), report);
      assert.match(report, /1 differing breakdown values: 0 missing, 0 extra, 1 different/);
      assert.doesNotMatch(report, /differing keys/, 'the counts themselves are right');
      assert.match(report, /MISMATCH/);
    } finally {
      await ch.close();
      await pipeline.stopAll();
      fs.rmSync(truthFile, { force: true });
    }
  });

  it('readDeadLetters counts committed records by reason and stops at the end despite transaction markers', async () => {
    const sb = await sandbox('toolsdlq');
    const { config } = sb;
    assert.deepEqual(await readDeadLetters(config, { timeoutMs: 20_000 }), {});

    const topic = config.topics.dlq;
    const plain = new DeliveringProducer(config.kafka.brokers);
    await plain.connect();
    const rec = (partition: number, reason: string) => {
      const headers: Kafka.MessageHeader[] = [{ reason: Buffer.from(reason) }, { detail: 'x' }];
      return { topic, partition, key: 'k', value: Buffer.from('{}'), headers };
    };
    await plain.send([rec(0, 'bad_json'), rec(0, 'bad_json'), rec(3, 'bad_json'), { topic, partition: 4, key: null, value: Buffer.from('x') }]);
    await plain.disconnect();

    const tx = new Kafka.Producer({ 'metadata.broker.list': config.kafka.brokers, 'transactional.id': `${topic}-test-tx`, log_level: 3 });
    const call = (fn: (cb: (err: Kafka.LibrdKafkaError | null) => void) => void) =>
      new Promise<void>((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
    await call((cb) => tx.connect({}, (err) => cb(err ?? null)));
    tx.setPollInterval(20);
    try {
      await call((cb) => tx.initTransactions(10_000, cb));
      await call((cb) => tx.beginTransaction(cb));
      tx.produce(topic, 1, Buffer.from('{}'), 'a', null, undefined, [{ reason: 'too_late' }]);
      tx.produce(topic, 2, Buffer.from('{}'), 'b', null, undefined, [{ reason: 'too_late' }]);
      await call((cb) => tx.commitTransaction(10_000, cb));
      await call((cb) => tx.beginTransaction(cb));
      for (let i = 0; i < 5; i++) tx.produce(topic, 1, Buffer.from('{}'), 'c', null, undefined, [{ reason: 'bad_cost' }]);
      // Delivered to the broker before the abort, so the log holds the aborted records and their marker.
      await call((cb) => tx.flush(10_000, cb));
      await call((cb) => tx.abortTransaction(10_000, cb));
    } finally {
      await new Promise<void>((resolve) => tx.disconnect(() => resolve()));
    }

    const started = Date.now();
    const counts = await readDeadLetters(config, { timeoutMs: 20_000 });
    assert.deepEqual(counts, { bad_json: 3, too_late: 2, '(none)': 1 });
    assert.ok(Date.now() - started < 15_000);
  });

  it('tally generate and tally verify work from the command line', async () => {
    const sb = await sandbox('toolscli');
    fs.mkdirSync(artifactsDir, { recursive: true });
    const truthFile = path.join(artifactsDir, `${sb.env.TALLY_TOPIC_PREFIX}truth.json`);
    const gen = new RoleProcess('generate', sb.env, ['--count', '300', '--id-prefix', 'cli-', '--seed', '9', '--bad', '9', '--too-late', '0', '--late-within-horizon', '0', '--truth', truthFile, '--quiet']);
    assert.equal(await waitExit(gen, 60_000), 0, gen.log());
    assert.match(gen.log(), /records acknowledged/);
    const truth: GroundTruth = readTruth(truthFile);
    assert.equal(truth.idPrefix, 'cli-');
    assert.equal(truth.deadLetters.too_late, 0);
    assert.equal(truth.deadLetters.bad_json, 1);
    let n = 0;
    await readTopicToEnd(sb.config.kafka.brokers, sb.config.topics.impressions, () => void n++, { timeoutMs: 30_000 });
    assert.equal(n, truth.counts.sent);

    // Nothing counts these impressions here (no aggregator): verify must fail with exit code 1.
    const ver = new RoleProcess('verify', sb.env, ['--truth', truthFile, '--timeout', '1', '--quiet']);
    assert.equal(await waitExit(ver, 60_000), 1, ver.log());
    assert.match(ver.log(), /missing/);
    assert.match(ver.log(), /MISMATCH/);
    fs.rmSync(truthFile, { force: true });

    // Too-late impressions are too late only once an aggregator's watermark says so: without one, a clear failure.
    const late = new RoleProcess('generate', sb.env, ['--count', '10', '--id-prefix', 'cli2-', '--too-late', '2', '--late-timeout', '2', '--quiet']);
    assert.equal(await waitExit(late, 60_000), 1, late.log());
    assert.match(late.log(), /Is an aggregator running on these topics\?/);
  });
});
