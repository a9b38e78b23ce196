/**
 * The guarantee, tested end to end on the real stack: every valid impression counted exactly once
 * in its window, whatever is killed; everything else on the DLQ with its reason. Each test ends in
 * an exact comparison of ClickHouse (FINAL) with the generator's ground truth.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { homePartition } from '../../server/src/impression/index.js';
import { ensureDebianPackage, LocalClickHouse, LocalKafkaBroker } from '../../server/src/stack/index.js';
import { buildEventPlan, generate, mergeTruth, planContext, producePlan, verify } from '../../server/src/tools/index.js';
import { createSandbox, eventually, sleep, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { assertExact, Pipeline, randomBetween } from '../kit/pipeline.js';
import { latestPartitions, metricOf } from '../kit/role-logs.js';

describe('exactly-once pipeline (real Kafka + ClickHouse, real processes)', function () {
  this.timeout(600_000);
  let sb: Sandbox;
  let pipeline: Pipeline;

  async function setUp(name: string, env: Record<string, string> = {}) {
    sb = await createSandbox(name, env);
    pipeline = new Pipeline(sb);
  }
  afterEach(async function () {
    this.timeout(120_000);
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  it('counts duplicates once, including retries of the whole stream sent again later (closed windows)', async () => {
    await setUp('dups');
    pipeline.startSink();
    pipeline.startAggregator();
    const ctx = planContext(sb.config, Date.now());
    const plan = buildEventPlan({ seed: 11, count: 20_000, idPrefix: 'dup-', duplicates: 0.25, lateWithinHorizon: 50, tooLate: 10, bad: 18 }, ctx);
    const truth = plan.truth;
    await producePlan(sb.config, plan);
    await eventually('the first pass counted in ClickHouse', async () => (await verify(sb.config, truth, { timeoutMs: 0 })).ok, 120_000, 1_000);
    // The same stream again, seconds to minutes of event time behind the watermark: every copy is a duplicate.
    await producePlan(sb.config, plan);
    const countedCopies = truth.counts.valid - truth.deadLetters.too_late;
    const deadLetters = Object.fromEntries(Object.entries(truth.deadLetters).map(([k, n]) => [k, n * 2])) as typeof truth.deadLetters;
    await assertExact(pipeline, { ...truth, deadLetters }, { duplicates: 2 * countedCopies - truth.counts.unique });
  });

  it('the at-least-once mode (the bench baseline) is exact too while nothing crashes, across a clean restart', async () => {
    await setUp('alo', { TALLY_PROCESSING_GUARANTEE: 'at_least_once' });
    pipeline.startSink();
    let agg = pipeline.startAggregator('alo-1');
    const producing = generate(sb.config, { seed: 12, count: 30_000, idPrefix: 'alo-', duplicates: 0.1, bad: 9, tooLate: 4, lateWithinHorizon: 20, rate: 10_000, durationS: 3 });
    const first = agg;
    await eventually('the first aggregator to count and commit', async () =>
      (await metricOf(first, 'tally_aggregator_events_counted_total')) > 0
      && (await metricOf(first, 'tally_aggregator_transactions_total{outcome="committed"}')) > 0, 60_000, 100);
    assert.equal(await agg.stop(), 0, 'SIGTERM: last commit, then exit 0');
    assert.match(agg.log(), /"guarantee":"at_least_once"/);
    agg = pipeline.startAggregator('alo-1');
    await assertExact(pipeline, await producing);
  });

  it('stays exact when the aggregator is SIGKILLed at random moments during a 100k-event stream', async () => {
    await setUp('killagg', { TALLY_COMMIT_INTERVAL_MS: '100' });
    pipeline.startSink();
    let agg = pipeline.startAggregator('agg-1');
    const producing = generate(sb.config, { seed: 22, count: 100_000, idPrefix: 'kill-', duplicates: 0.1, bad: 27, tooLate: 8, lateWithinHorizon: 40 });
    let kills = 0;
    let done = false;
    void producing.finally(() => { done = true; });
    while (kills < 6 && (!done || kills < 5)) {
      await sleep(randomBetween(1_500, 5_000)); // fault injection at a random moment
      await agg.kill();
      kills++;
      // Same instance id: the restarted producer's initTransactions aborts what the killed one left open.
      agg = pipeline.startAggregator('agg-1');
    }
    const truth = await producing;
    assert.ok(kills >= 5, `killed ${kills} times`);
    await assertExact(pipeline, truth, { timeoutMs: 240_000 });
  });

  it('stays exact when the sink is SIGKILLed and ClickHouse is stopped and restarted mid-stream', async () => {
    await setUp('killsink');
    const ch = new LocalClickHouse(sb.config);
    assert.ok(!sb.config.clickhouse.external, 'this test stops the local ClickHouse; run it without CLICKHOUSE_URL');
    pipeline.startAggregator();
    let sink = pipeline.startSink();
    const producing = generate(sb.config, { seed: 33, count: 40_000, idPrefix: 'sink-', duplicates: 0.1, rate: 8_000, durationS: 5 });
    try {
      const first = sink;
      await eventually('the sink to insert a batch', async () => (await metricOf(first, 'tally_sink_batches_total{outcome="inserted"}')) > 0, 60_000, 100);
      await sink.kill();
      sink = pipeline.startSink();
      const second = sink;
      await eventually('the new sink to own partitions', async () => latestPartitions(second, 'sink.partitions_assigned').length > 0, 60_000, 100);
      await ch.stop();
      // The outage itself: ClickHouse stays down 5 s (a fault of a chosen length, not a wait).
      await sleep(5_000);
      assert.ok(sink.alive, 'the sink waits for ClickHouse instead of crashing');
    } finally {
      await ch.start(() => undefined);
    }
    const resumed = sink;
    await eventually('the sink to work against ClickHouse again', async () => (await metricOf(resumed, 'tally_sink_waiting_for_clickhouse')) === 0, 60_000, 200);
    await sink.kill();
    pipeline.startSink();
    await assertExact(pipeline, await producing);
  });

  it('stays exact across rebalances: two aggregators, one killed and a new one started mid-stream', async () => {
    await setUp('rebalance');
    pipeline.startSink();
    const a = pipeline.startAggregator('agg-a');
    const b = pipeline.startAggregator('agg-b');
    const producing = generate(sb.config, { seed: 44, count: 60_000, idPrefix: 'reb-', duplicates: 0.15, rate: 10_000, durationS: 6 });
    const owned = (p: RoleProcess) => latestPartitions(p, 'aggregator.tasks_owned').length;
    await eventually('both aggregators to own partitions, all between them', async () => owned(a) > 0 && owned(b) > 0 && owned(a) + owned(b) === sb.config.partitions, 60_000, 100);
    await eventually('the first to count', async () => (await metricOf(a, 'tally_aggregator_transactions_total{outcome="committed"}')) > 0, 30_000, 100);
    await a.kill();
    await eventually('the survivor to take over every partition', async () => owned(b) === sb.config.partitions, 60_000, 100);
    pipeline.startAggregator('agg-c');
    await assertExact(pipeline, await producing, { timeoutMs: 180_000 });
  });

  it('stays exact when the Kafka broker restarts mid-stream', async () => {
    await setUp('broker');
    assert.ok(!sb.config.kafka.external, 'this test restarts the local broker; run it without KAFKA_BROKERS');
    const sink = pipeline.startSink();
    pipeline.startAggregator();
    const broker = new LocalKafkaBroker(sb.config);
    const producing = generate(sb.config, { seed: 55, count: 40_000, idPrefix: 'brk-', duplicates: 0.1, rate: 5_000, durationS: 8 });
    // Mid-stream: counted, committed and written to ClickHouse once already.
    await eventually('the sink to insert a batch', async () => (await metricOf(sink, 'tally_sink_batches_total{outcome="inserted"}')) > 0, 60_000, 100);
    await broker.stop();
    // The outage itself: the broker stays down 2 s (a fault of a chosen length, not a wait).
    await sleep(2_000);
    await broker.start(() => undefined);
    await assertExact(pipeline, await producing, { timeoutMs: 240_000 });
  });

  it('sends malformed events of every kind to the DLQ with their reason and keeps counting', async () => {
    await setUp('bad');
    pipeline.startSink();
    pipeline.startAggregator();
    const truth = await generate(sb.config, { seed: 66, count: 3_000, idPrefix: 'bad-', bad: 90, tooLate: 10 });
    for (const [reason, n] of Object.entries(truth.deadLetters)) assert.ok(n > 0, `the plan has ${reason} events`);
    await assertExact(pipeline, truth);
    // And the pipeline keeps going after them.
    const more = await generate(sb.config, { seed: 67, count: 2_000, idPrefix: 'bad2-', bad: 0, tooLate: 0, lateWithinHorizon: 0 });
    const merged = mergeTruth(truth, more);
    await assertExact(pipeline, merged);
  });

  it('counts late events within the horizon (revising closed windows) and dead-letters those beyond it', async () => {
    await setUp('late');
    pipeline.startSink();
    pipeline.startAggregator();
    const truth = await generate(sb.config, { seed: 77, count: 5_000, idPrefix: 'late-', lateWithinHorizon: 200, tooLate: 25, jitterMs: 4_000 });
    assert.equal(truth.deadLetters.too_late, 25);
    await assertExact(pipeline, truth);
    const ch = createClickHouse(sb.config);
    try {
      const revised = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${sb.config.clickhouse.database}.impression_counts FINAL WHERE revised = 1`);
      assert.ok(Number(revised[0].n) > 0, 'late events revised closed windows (rows flagged revised)');
    } finally {
      await ch.close();
    }
  });

  it('forwards records from another partitioner (kcat) or without a key to their home partition, once', async () => {
    await setUp('foreign', { TALLY_PARTITIONS: '8' });
    ensureDebianPackage('kcat', 'kcat', () => undefined);
    pipeline.startSink();
    pipeline.startAggregator();
    const truth = await generate(sb.config, { seed: 88, count: 5_000, idPrefix: 'fwd-', keyMode: 'mixed', duplicates: 0.3 });
    // The same impressions again through kcat (its default partitioner is CRC32-based, not murmur2),
    // keyed and unkeyed: all duplicates of what was counted, often read on another partition.
    const plan = buildEventPlan({ seed: 88, count: 5_000, idPrefix: 'fwd-', keyMode: 'mixed', duplicates: 0.3 }, planContext(sb.config, Date.parse(truth.generatedAt)));
    const counted = plan.records.filter((r) => r.kind === 'original').slice(0, 2_000);
    const foreign = counted.filter((r) => homePartition(JSON.parse(r.value!.toString()).impression_id as string, 8) !== 0);
    const keyed = counted.slice(0, 1_000).map((r) => `${r.key ?? JSON.parse(r.value!.toString()).impression_id}\t${r.value!.toString()}`).join('\n');
    const unkeyed = counted.slice(1_000).map((r) => r.value!.toString()).join('\n');
    for (const [args, input] of [[['-K', '\t'], keyed], [[], unkeyed]] as const) {
      const r = spawnSync('kcat', ['-P', '-b', sb.config.kafka.brokers, '-t', sb.config.topics.impressions, ...args], { input: `${input}\n`, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
    assert.ok(foreign.length > 1_000, 'most kcat records land away from their home partition');
    await assertExact(pipeline, truth, { duplicates: truth.counts.duplicatesSent + counted.length });
  });
});
