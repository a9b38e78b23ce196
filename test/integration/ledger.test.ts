/**
 * The billing ledger on the real stack: periods close as committed facts, every billed number
 * traces back to Kafka offsets, `tally reconcile` recomputes them independently, no period is
 * final while a partition could still change it, crashes around a close leave each period in the
 * ledger once, and late events are reported once, in the period they arrived in. Hours close once
 * the watermark passes their end + 2 s lateness + 10 s horizon.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { isoUtc, runExport, type JsonExportHeader } from '../../server/src/billing/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { repoRoot } from '../../server/src/config/index.js';
import { queryFrontier, queryLastReconciliation } from '../../server/src/ledger/index.js';
import { homePartition } from '../../server/src/impression/index.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import { ensureDebianPackage } from '../../server/src/stack/index.js';
import { awaitWatermark } from '../../server/src/tools/index.js';
import { createSandbox, eventually, latestPartitions, sleep, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { produceEvents, spreadEvents, truthOf, type HandEvent } from '../kit/hand-events.js';
import { assertExact, awaitFinal, Pipeline, randomBetween } from '../kit/pipeline.js';

const HOUR = 3_600_000;
const SHORT = { TALLY_ALLOWED_LATENESS_MS: '2000', TALLY_DEDUP_HORIZON_MS: '10000', TALLY_OUT_OF_ORDERNESS_MS: '1000', TALLY_IDLE_TIMEOUT_MS: '1000' };
const ROUTES = ['home', 'foreign', 'nokey'] as const;

/** `n` events per past hour h = hours … 1 before the current hour H, for advertisers `${prefix}adv-1/2`, with a retry after every 7th. */
function pastHours(prefix: string, H: number, hours: number, n: number): { events: HandEvent[]; produced: HandEvent[]; copies: number } {
  const events: HandEvent[] = [];
  for (let h = hours; h >= 1; h--) {
    events.push(...spreadEvents(`${prefix}h${h}-`, n, H - h * HOUR + 1_000, H - (h - 1) * HOUR - 60_000)
      .map((e) => ({ ...e, advertiser_id: e.advertiser_id.replace(`${prefix}h${h}-`, prefix), campaign_id: e.campaign_id.replace(`${prefix}h${h}-`, prefix) })));
  }
  const produced = events.flatMap((e, i) => (i % 7 === 0 ? [e, e] : [e]));
  return { events, produced, copies: produced.length - events.length };
}

/**
 * The start of the current hour, once far enough into it that the past hours can close (a
 * time-of-hour guard: it waits for the clock, not for anything the pipeline does).
 */
async function currentHour(): Promise<number> {
  if (Date.now() % HOUR < 20_000) await sleep(20_000 - (Date.now() % HOUR));
  return Math.floor(Date.now() / HOUR) * HOUR;
}

describe('billing ledger (real Kafka + ClickHouse, real processes)', function () {
  this.timeout(600_000);
  let sb: Sandbox;
  let pipeline: Pipeline;

  afterEach(async function () {
    this.timeout(120_000);
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  it('every billed number traces back to Kafka offsets; tally reconcile agrees, and names a tampered row', async () => {
    sb = await createSandbox('lineage', SHORT);
    pipeline = new Pipeline(sb);
    pipeline.startSink();
    pipeline.startAggregator();
    const H = await currentHour();
    const { events, produced, copies } = pastHours('lin-', H, 2, 600);
    await produceEvents(sb.config, produced, (i) => ROUTES[i % 3]);
    await assertExact(pipeline, truthOf(sb.config, 'lin-', events, copies));
    await awaitFinal(sb.config, H);

    // The final statement (JSON) of one advertiser: its rows and the offset ranges they came from.
    const ch = createClickHouse(sb.config);
    try {
      let text = '';
      const result = await runExport(ch, sb.config, { advertiserId: 'lin-adv-1', from: H - 2 * HOUR, to: H, granularity: 'hour', format: 'json' }, async (c) => { text += c; });
      assert.equal(result.status, 'final');
      const doc = JSON.parse(text) as JsonExportHeader & { rows: Array<{ period_start: string; campaign_id: string; impressions: string; spend_micros: string }> };
      assert.equal(doc.lineage.length, sb.config.partitions);

      // An independent client (kcat) re-reads exactly those ranges: the records counted at each partition
      // are those of its input read there as their home, and those forwarded to it; the first copy counts.
      ensureDebianPackage('kcat', 'kcat', () => undefined);
      const firstCopy = new Map<string, HandEvent>();
      for (const l of doc.lineage) {
        for (const [range, forwarded] of [[l.source, false], [l.repartition, true]] as const) {
          if (range.first_offset === null || range.close_offset <= range.first_offset) continue;
          const r = spawnSync('kcat', ['-C', '-b', sb.config.kafka.brokers, '-t', range.topic, '-p', String(l.partition), '-o', String(range.first_offset),
            '-c', String(range.close_offset - range.first_offset), '-e', '-q', '-X', 'isolation.level=read_committed', '-f', '%k\t%s\n'], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
          assert.equal(r.status, 0, r.stderr);
          for (const line of r.stdout.split('\n')) {
            const tab = line.indexOf('\t');
            if (tab < 0 || line.startsWith('marker|')) continue;
            const e = JSON.parse(line.slice(tab + 1)) as HandEvent;
            if (!forwarded && homePartition(e.impression_id, sb.config.partitions) !== l.partition) continue;
            if (!firstCopy.has(e.impression_id)) firstCopy.set(e.impression_id, e);
          }
        }
      }
      const reproduced = new Map<string, { impressions: bigint; spend: bigint }>();
      for (const e of firstCopy.values()) {
        if (e.advertiser_id !== 'lin-adv-1' || e.ts < H - 2 * HOUR || e.ts >= H) continue;
        const key = `${new Date(e.ts - (e.ts % HOUR)).toISOString().replace('.000', '')}|${e.campaign_id}`;
        const a = reproduced.get(key) ?? { impressions: 0n, spend: 0n };
        reproduced.set(key, { impressions: a.impressions + 1n, spend: a.spend + BigInt(e.cost_micros) });
      }
      assert.deepEqual(
        [...reproduced.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [...k.split('|'), v.impressions.toString(), v.spend.toString()]),
        doc.rows.map((r) => [r.period_start, r.campaign_id, r.impressions, r.spend_micros]),
        'the statement\'s lineage reproduces its rows');

      // tally reconcile recomputes every final period from the raw topics: equal; then a tampered ledger row is named.
      const reconcile = () => spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/cli.ts'), 'reconcile',
        '--from', new Date(H - 2 * HOUR).toISOString(), '--to', new Date(H + HOUR).toISOString()], { cwd: repoRoot, env: sb.env, encoding: 'utf8' });
      const ok = reconcile();
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /2 final hour\(s\)/);
      assert.match(ok.stdout, /not final yet \(not compared\)/);
      assert.match(ok.stdout, /^OK: the ledger equals the recomputation$/m);
      const db = sb.config.clickhouse.database;
      // Statements read rolled-up hours from billing_statement: reconcile checks that too. Tamper once the hours are rolled up.
      await eventually('the final hours rolled up', async () => ((await queryFrontier(ch, db, sb!.config.partitions)).rolledBefore ?? 0) >= H, 60_000);
      await ch.command({
        query: `INSERT INTO ${db}.billing_ledger (period_start, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, closed_at) `
          + `VALUES (toDateTime(${(H - HOUR) / 1000}), 'lin-adv-2', 'lin-adv-2-cmp-9', 3, 1, 100, 0, now())`,
      });
      const tampered = reconcile();
      assert.equal(tampered.status, 1, tampered.stdout + tampered.stderr);
      assert.match(tampered.stdout, new RegExp(`DIFFERENT ${new Date(H - HOUR).toISOString()} lin-adv-2 lin-adv-2-cmp-9: ledger 1 impressions, 100 micros; recomputed from Kafka missing`));
      assert.match(tampered.stdout, /MISMATCH: 1 row\(s\) differ/);
      // A row of the roll-up doubled (same roll-up id): what statements serve is wrong, and named.
      const [victim] = await queryRows<{ adv: string; cmp: string; i: string }>(ch, `SELECT advertiser_id AS adv, campaign_id AS cmp, toString(impressions) AS i FROM ${db}.billing_statement `
        + `WHERE period_start = toDateTime(${(H - 2 * HOUR) / 1000}) AND (period_start, rollup_id) IN (SELECT period_start, min(rollup_id) FROM ${db}.final_periods GROUP BY period_start) ORDER BY campaign_id LIMIT 1`);
      await ch.command({
        query: `INSERT INTO ${db}.billing_statement SELECT * FROM ${db}.billing_statement WHERE period_start = toDateTime(${(H - 2 * HOUR) / 1000}) `
          + `AND campaign_id = '${victim.cmp}' AND (period_start, rollup_id) IN (SELECT period_start, min(rollup_id) FROM ${db}.final_periods GROUP BY period_start)`,
      });
      const doubled = reconcile();
      assert.equal(doubled.status, 1, doubled.stdout + doubled.stderr);
      assert.match(doubled.stdout, new RegExp(`DIFFERENT ${new Date(H - 2 * HOUR).toISOString()} ${victim.adv} ${victim.cmp}: statement ${2n * BigInt(victim.i)} impressions, \\d+ micros; recomputed from Kafka ${victim.i} impressions`));
      assert.match(doubled.stdout, /MISMATCH: 2 row\(s\) differ/);
      const runs = await queryRows<{ differences: number }>(ch, `SELECT differences FROM ${db}.reconciliations ORDER BY ran_at, differences`);
      assert.deepEqual(runs.map((r) => Number(r.differences)), [0, 1, 2], 'each run recorded for the pipeline page');
      const last = await queryLastReconciliation(ch, db);
      assert.equal(last?.differences, 2);
      assert.equal(last?.from, H - 2 * HOUR);
      assert.match(last?.detail ?? '', /statement .* recomputed from Kafka/);
    } finally {
      await ch.close();
    }
  });

  it('no period is final while a partition is behind (its aggregator paused)', async () => {
    sb = await createSandbox('behind', SHORT);
    pipeline = new Pipeline(sb);
    pipeline.startSink();
    const a = pipeline.startAggregator('beh-a');
    const b = pipeline.startAggregator('beh-b');
    const owned = (p: RoleProcess) => latestPartitions(p, 'aggregator.tasks_owned').length;
    await eventually('the partitions split between the two', async () => owned(a) === 4 && owned(b) === 4, 60_000);
    const H = await currentHour();
    const { events, produced, copies } = pastHours('beh-', H, 1, 400);
    const db = sb.config.clickhouse.database;
    const ch = createClickHouse(sb.config);
    try {
      b.child.kill('SIGSTOP');
      try {
        // Everything produced, time moving on every partition, one aggregator counting: still nothing may close.
        await produceEvents(sb.config, produced, (i) => ROUTES[i % 3]);
        const producer = new DeliveringProducer(sb.config.kafka.brokers);
        await producer.connect();
        for (let i = 0; i < 12; i++) {
          const tick = { impression_id: `tick-${i}`, ts: Date.now(), advertiser_id: 'clock', campaign_id: 'clock', cost_micros: 0 };
          await producer.send([{ topic: sb.config.topics.impressions, partition: i % sb.config.partitions, key: tick.impression_id, value: Buffer.from(JSON.stringify(tick)) }]);
          // Pacing, and the time a wrong close would need to show: nothing observable marks "would have closed".
          await sleep(400);
        }
        await producer.disconnect();
        const closes = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${db}.period_closes WHERE period_start = toDateTime(${(H - HOUR) / 1000})`);
        assert.equal(Number(closes[0].n), 0, 'the past hour is closed nowhere while partitions are behind');
      } finally {
        b.child.kill('SIGCONT');
      }
      await assertExact(pipeline, truthOf(sb.config, 'beh-', events, copies));
      await awaitFinal(sb.config, H);
      const ledger = await queryRows<{ n: string }>(ch,
        `SELECT sum(i) AS n FROM (SELECT any(impressions) AS i FROM ${db}.billing_ledger WHERE advertiser_id LIKE 'beh-%' GROUP BY period_start, advertiser_id, campaign_id, source_partition)`);
      assert.equal(Number(ledger[0].n), events.length, 'then final, with every impression');
    } finally {
      await ch.close();
    }
  });

  it('SIGKILLs of the aggregator and the sink while periods close: each period in the ledger once, equal to what was produced', async () => {
    sb = await createSandbox('closecrash', SHORT);
    pipeline = new Pipeline(sb);
    let sink = pipeline.startSink();
    let agg = pipeline.startAggregator('cc-1');
    const H = await currentHour();
    const { events, produced, copies } = pastHours('cc-', H, 3, 500);
    await produceEvents(sb.config, produced, (i) => ROUTES[i % 3]);
    // Time moves on (a tick every 300 ms) while the hours close, and processes die at random moments.
    let ticking = true;
    const ticker = (async () => {
      const producer = new DeliveringProducer(sb.config.kafka.brokers);
      await producer.connect();
      for (let i = 0; ticking; i++) {
        const tick = { impression_id: `tick-${i}`, ts: Date.now(), advertiser_id: 'clock', campaign_id: 'clock', cost_micros: 0 };
        await producer.send([{ topic: sb.config.topics.impressions, partition: null, key: tick.impression_id, value: Buffer.from(JSON.stringify(tick)) }]);
        await sleep(300); // pacing: a tick every 300 ms
      }
      await producer.disconnect();
    })();
    try {
      for (let round = 0; round < 6; round++) {
        await sleep(randomBetween(300, 1_500)); // fault injection at a random moment
        await agg.kill();
        agg = pipeline.startAggregator('cc-1');
        if (round % 2 === 1) {
          await sink.kill();
          sink = pipeline.startSink();
        }
      }
    } finally {
      ticking = false;
      await ticker;
    }
    await assertExact(pipeline, truthOf(sb.config, 'cc-', events, copies), { timeoutMs: 180_000 });
    await awaitFinal(sb.config, H);
    const ch = createClickHouse(sb.config);
    const db = sb.config.clickhouse.database;
    try {
      // Re-inserted closes are identical: one version per key, whatever the crashes.
      const keys = await queryRows<{ versions: string }>(ch,
        `SELECT uniqExact(impressions, spend_micros, duplicates) AS versions FROM ${db}.billing_ledger GROUP BY period_start, advertiser_id, campaign_id, source_partition ORDER BY versions DESC LIMIT 1`);
      assert.equal(Number(keys[0].versions), 1, 'one version of every ledger row');
      const closes = await queryRows<{ versions: string }>(ch,
        `SELECT uniqExact(ledger_rows, source_close_offset, repartition_close_offset) AS versions FROM ${db}.period_closes GROUP BY period_start, source_partition ORDER BY versions DESC LIMIT 1`);
      assert.equal(Number(closes[0].versions), 1, 'one close per period and partition');
      const perHour = await queryRows<{ p: string; n: string }>(ch,
        `SELECT toUInt32(period_start) AS p, sum(i) AS n FROM (SELECT period_start, any(impressions) AS i FROM ${db}.billing_ledger WHERE advertiser_id LIKE 'cc-%' `
        + 'GROUP BY period_start, advertiser_id, campaign_id, source_partition) GROUP BY p ORDER BY p');
      const expected = [3, 2, 1].map((h) => [String((H - h * HOUR) / 1000), String(events.filter((e) => e.ts >= H - h * HOUR && e.ts < H - (h - 1) * HOUR).length)]);
      assert.deepEqual(perHour.map((r) => [String(r.p), String(r.n)]), expected, 'each hour once, exact');
      const everyPartition = await queryRows<{ n: string }>(ch,
        `SELECT uniqExact(source_partition) AS n FROM ${db}.period_closes WHERE period_start = toDateTime(${(H - HOUR) / 1000})`);
      assert.equal(Number(everyPartition[0].n), sb.config.partitions);
    } finally {
      await ch.close();
    }
  });

  it('late events are reported once, in the period their partition\'s watermark was in, on both sides of the finality frontier', async () => {
    sb = await createSandbox('arrival', SHORT);
    pipeline = new Pipeline(sb);
    pipeline.startSink();
    pipeline.startAggregator();
    const H = await currentHour();
    const db = sb.config.clickhouse.database;
    const adv = 'arr-adv-1';
    /** `n` too-late events of `adv` stamped in [from, from + 4 s]. */
    const produceLate = (prefix: string, n: number, from: number) => produceEvents(sb.config,
      spreadEvents(prefix, n, from, from + 4_000).map((e) => ({ ...e, advertiser_id: adv, campaign_id: `${adv}-cmp-1` })), (i) => ROUTES[i % 3]);
    /**
     * Event time moves into `hour` on every partition (traffic stamped in its first half), then stays
     * there: nothing moves it by the wall clock. Every partition gets records past its first 1 000 s.
     */
    const moveTimeInto = async (prefix: string, hour: number) => {
      await produceEvents(sb.config, spreadEvents(prefix, 200, hour + 1_000, hour + 1_800_000), (i) => ROUTES[i % 3]);
      await awaitWatermark(sb.config, hour + 1_000_000);
    };
    const ch = createClickHouse(sb.config);
    try {
      // Refused while the watermark is in H−3 (arrival H−3, final below): 6 events of H−4.
      await moveTimeInto('arr-a-', H - 3 * HOUR);
      await produceLate('arr-late4-', 6, H - 4 * HOUR + 5_000);
      // Time moves into H−1: H−3 and H−2 close everywhere (final); H−1 stays open. Then 4 events of H−3 arrive there.
      await moveTimeInto('arr-b-', H - HOUR);
      await produceLate('arr-late3-', 4, H - 3 * HOUR + 5_000);
      const lateByArrival = async () => (await queryRows<{ a: string; n: string }>(ch, `SELECT toUInt32(arrival_period) AS a, count() AS n FROM ${db}.dead_letters FINAL `
        + `WHERE reason = 'too_late' AND advertiser_id = '${adv}' GROUP BY a ORDER BY a`)).map((r) => [Number(r.a) * 1000, Number(r.n)]);
      await eventually('the late events dead-lettered', async () => (await lateByArrival()).reduce((s, [, n]) => s + n, 0) === 10, 60_000);
      assert.deepEqual(await lateByArrival(), [[H - 3 * HOUR, 6], [H - HOUR, 4]], 'each dead letter carries the period its watermark was in');
      const frontierAt = async () => (await queryFrontier(ch, db, sb!.config.partitions)).finalBefore;
      await eventually('H−3 and H−2 final, H−1 not', async () => (await frontierAt()) === H - HOUR, 60_000);
      const late = async (from: number, to: number) => {
        let text = '';
        const r = await runExport(ch, sb!.config, { advertiserId: adv, from, to, granularity: 'hour', format: 'json' }, async (c) => { text += c; });
        const doc = JSON.parse(text) as JsonExportHeader;
        return { status: r.status, events: Number(doc.late_unbillable.events), periods: doc.late_unbillable.periods.map((p) => [p.period_start, Number(p.events)]) };
      };
      // Across the frontier: the 6 from billing_late (final arrival period), the 4 from the dead letters (open one), none twice.
      assert.deepEqual(await late(H - 3 * HOUR, H + HOUR), { status: 'provisional', events: 10, periods: [[isoUtc(H - 4 * HOUR), 6], [isoUtc(H - 3 * HOUR), 4]] });
      assert.deepEqual(await late(H - 3 * HOUR, H - HOUR), { status: 'final', events: 6, periods: [[isoUtc(H - 4 * HOUR), 6]] });
      assert.deepEqual(await late(H - HOUR, H + HOUR), { status: 'provisional', events: 4, periods: [[isoUtc(H - 3 * HOUR), 4]] });
      assert.deepEqual(await late(H, H + HOUR), { status: 'provisional', events: 0, periods: [] }, 'nothing arrived in the hour the dead letters were written in');
      assert.equal(await frontierAt(), H - HOUR, 'the frontier did not move while the statements were read');
    } finally {
      await ch.close();
    }
  });
});
