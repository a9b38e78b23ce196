/**
 * The guarantee under time (docs/architecture.md, "Event time"): outages, other partitioners, idle
 * producers, fast clocks, re-stamped retries and setting changes never lose or double an
 * impression. Real Kafka, real ClickHouse, real aggregator processes; every test ends in an exact
 * comparison with what was produced. Windows of 5 s and a dedup horizon of seconds make "an hour
 * later" happen in a test's lifetime.
 */
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import type { CountsResponse } from '../../server/src/contracts/api-types.js';
import { ensureWebBuild } from '../../server/src/api/web-assets.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { awaitWatermark, lowestWatermark, publishedWatermarks, readTopicToEnd } from '../../server/src/tools/index.js';
import { launchChromium, parseMicros, textOf } from '../kit/browser.js';
import { createSandbox, eventually, freePort, RoleProcess, sleep, type Sandbox } from '../kit/harness.js';
import { idsWithHome, produceEvents, produceWithKcat, spreadEvents, truthOf, type HandEvent } from '../kit/hand-events.js';
import { assertExact, Pipeline } from '../kit/pipeline.js';

/** 5 s windows, 2 s lateness, 10 s dedup horizon: an event 17 s behind the watermark is too late. */
const SHORT = {
  TALLY_WINDOW_MS: '5000', TALLY_ALLOWED_LATENESS_MS: '2000', TALLY_DEDUP_HORIZON_MS: '10000',
  TALLY_OUT_OF_ORDERNESS_MS: '1000', TALLY_IDLE_TIMEOUT_MS: '1000',
};
const RETENTION_MS = 5000 + 2000 + 10000;

/** The aggregator's gauges (refreshed once a second) say every input of every partition reported idle. */
async function allInputsIdle(agg: RoleProcess): Promise<boolean> {
  const port = [...agg.log().matchAll(/"metricsPort":(\d+)/g)].at(-1)?.[1];
  if (port === undefined) return false;
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const idle = text.split('\n').filter((l) => l.startsWith('tally_aggregator_input_idle{'));
  return idle.length === 8 * 8 && idle.every((l) => l.endsWith(' 1'));
}

describe('event time (real Kafka + ClickHouse, real processes)', function () {
  this.timeout(600_000);
  let sb: Sandbox;
  let pipeline: Pipeline;

  async function setUp(name: string, env: Record<string, string> = {}) {
    sb = await createSandbox(name, { ...SHORT, ...env });
    pipeline = new Pipeline(sb);
  }
  afterEach(async function () {
    this.timeout(120_000);
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  async function query<T>(sql: string): Promise<T[]> {
    const ch = createClickHouse(sb.config);
    try {
      return await queryRows<T>(ch, sql);
    } finally {
      await ch.close();
    }
  }

  const impressionsInClickHouse = async () => Number((await query<{ n: string }>(`SELECT sum(impressions) AS n FROM ${sb.config.clickhouse.database}.impression_counts FINAL`))[0]?.n ?? 0);
  const revisedVersions = async () => Number((await query<{ n: string }>(`SELECT count() AS n FROM ${sb.config.clickhouse.database}.impression_counts WHERE revised = 1`))[0].n);

  it('an outage longer than the horizon, a backlog through kcat and without keys: every impression counted, none dead-lettered', async () => {
    await setUp('outage');
    pipeline.startSink();
    let agg = pipeline.startAggregator('outage-1');
    const T = Date.now();
    const before = spreadEvents('out-pre-', 400, T - 75_000, T - 70_000);
    await produceEvents(sb.config, before);
    await eventually('the traffic before the outage counted', async () => (await impressionsInClickHouse()) === before.length, 60_000);
    await agg.kill();

    // 60 s of event time (3.5× what the horizon keeps) piles up while no aggregator runs, through a
    // partitioner that is not murmur2: most records are read away from their home partition.
    const backlog = spreadEvents('out-bl-', 6_000, T - 60_000, T);
    const copies = backlog.filter((_, i) => i % 10 === 0);
    const interleaved = backlog.flatMap((e, i) => (i % 10 === 0 ? [e, e] : [e]));
    produceWithKcat(sb.config, interleaved.slice(0, 3_300), true);
    produceWithKcat(sb.config, interleaved.slice(3_300), false);
    agg = pipeline.startAggregator('outage-1');
    await assertExact(pipeline, truthOf(sb.config, 'out-', [...before, ...backlog], copies.length), { timeoutMs: 180_000 });
  });

  it('producers silent past the idle timeout and the horizon, then a buffered flush: exact, nothing dead-lettered or revised', async () => {
    // A 3 s idle timeout: the flush reaches every partition within its 1.5 s grace even on a busy machine.
    await setUp('idle', { TALLY_IDLE_TIMEOUT_MS: '3000' });
    pipeline.startSink();
    const agg = pipeline.startAggregator();
    const live = spreadEvents('idle-live-', 1_000, Date.now() - 2_000, Date.now());
    await produceEvents(sb.config, live, (i) => (['home', 'foreign', 'nokey'] as const)[i % 3]);
    await eventually('the live traffic counted', async () => (await impressionsInClickHouse()) === live.length, 60_000);

    // Silence, longer than the idle timeout (3 s) and than window + lateness + horizon (17 s):
    // the producers buffer what happens meanwhile. Idle is not progress: the watermark stays put.
    const silentFrom = Date.now();
    await eventually('every input of every partition idle', async () => allInputsIdle(agg), 30_000, 500);
    const held = await lowestWatermark(sb.config);
    assert.ok(held !== null && held < silentFrom, `every partition published a watermark (${held})`);
    // A negative check needs the time to pass: silence past the idle timeout and the retention, then no watermark may have moved.
    await sleep(Math.max(0, silentFrom + RETENTION_MS + 3_000 + 2_000 - Date.now()));
    assert.equal(await lowestWatermark(sb.config), held, 'no watermark moved while every producer was silent');

    const buffered = spreadEvents('idle-buf-', 3_000, silentFrom, Date.now());
    await produceEvents(sb.config, buffered, (i) => (['home', 'foreign', 'nokey'] as const)[i % 3]);
    await assertExact(pipeline, truthOf(sb.config, 'idle-', [...live, ...buffered]), { timeoutMs: 120_000 });
    assert.equal(await revisedVersions(), 0, 'no row was revised after it was final');
  });

  it('an event stamped in the future (within the skew) moves no watermark past the wall clock and closes nothing early', async () => {
    await setUp('future');
    pipeline.startSink();
    pipeline.startAggregator();
    const now = Date.now();
    const ahead: HandEvent = { impression_id: 'fut-ahead', ts: now + 120_000, advertiser_id: 'fut-adv-1', campaign_id: 'fut-adv-1-cmp-1', cost_micros: 1 };
    const early = spreadEvents('fut-a-', 800, now - 1_000, now);
    await produceEvents(sb.config, [...early, ahead]);
    await eventually('both counted', async () => (await impressionsInClickHouse()) === early.length + 1, 60_000);
    const [futureRow] = await query<{ final: number }>(`SELECT final FROM ${sb.config.clickhouse.database}.impression_counts FINAL WHERE campaign_id = 'fut-adv-1-cmp-1' AND window_start >= toDateTime(${Math.floor((now + 60_000) / 1000)})`);
    assert.equal(Number(futureRow.final), 0, 'the future event\'s window is open');

    // Everything stamped now, after the future event was seen: on time, in open windows.
    const later = spreadEvents('fut-b-', 800, Date.now() - 500, Date.now());
    await produceEvents(sb.config, later, (i) => (i % 2 === 0 ? 'home' : 'nokey'));
    await assertExact(pipeline, truthOf(sb.config, 'fut-', [...early, ahead, ...later]), { timeoutMs: 120_000 });
    assert.equal(await revisedVersions(), 0, 'nothing had been closed early');
    const records = await publishedWatermarks(sb.config);
    let seen = 0;
    for (const list of records.values()) {
      for (const r of list) {
        assert.ok(r.watermark <= r.emitted_at - 1_000, `partition ${r.source_partition}: watermark ${r.watermark} passed the wall clock ${r.emitted_at} − out-of-orderness`);
        if (r.max_event_time === ahead.ts) seen++;
      }
    }
    assert.ok(seen > 0, 'a watermark record saw the future event');
  });

  it('a retry re-stamped by its producer into the next window is counted once, in the first copy\'s window', async () => {
    await setUp('restamp');
    pipeline.startSink();
    pipeline.startAggregator();
    const W = sb.config.windowMs;
    const end = Math.floor(Date.now() / W) * W;
    const firsts = spreadEvents('rs-', 600, end - 600, end - 1);
    await produceEvents(sb.config, firsts);
    // The same ids again, stamped 1–4 s later (the next window), through other partitions and no key.
    const retries = firsts.filter((_, i) => i % 3 === 0).map((e, i) => ({ ...e, ts: end + 1_000 + (i % 3_000) }));
    await produceEvents(sb.config, retries, (i) => (i % 2 === 0 ? 'foreign' : 'nokey'));
    await assertExact(pipeline, truthOf(sb.config, 'rs-', firsts, retries.length), { timeoutMs: 120_000 });
    const windows = await query<{ w: string }>(`SELECT DISTINCT toUnixTimestamp(window_start) * 1000 AS w FROM ${sb.config.clickhouse.database}.impression_counts FINAL WHERE impressions > 0 OR duplicates > 0`);
    assert.deepEqual(windows.map((r) => Number(r.w)), [end - W], 'duplicates are attributed to the first copy\'s window');
  });

  it('restarts with a larger or smaller horizon and lateness never count an old id twice; a new window size or partition count is refused', async () => {
    await setUp('settings', { TALLY_DEDUP_HORIZON_MS: '5000', TALLY_ALLOWED_LATENESS_MS: '1000' });
    pipeline.startSink();
    let agg = pipeline.startAggregator('cfg-1');
    const T = Date.now();
    const old = spreadEvents('cfg-old-', 300, T - 40_000, T - 38_000);
    const recent = spreadEvents('cfg-new-', 300, T - 1_000, T);
    await produceEvents(sb.config, old);
    await produceEvents(sb.config, recent);
    // Past the horizon of the old windows (5 s + 1 s + 5 s): they are evicted, their ids forgotten.
    await awaitWatermark(sb.config, T - 38_000 + 11_000 + 5_000, { timeoutMs: 60_000 });
    let truth = truthOf(sb.config, 'cfg-', [...old, ...recent]);
    await assertExact(pipeline, truth);
    await agg.stop();

    // A 10-minute horizon and a minute of lateness: the evicted windows stay gone.
    agg = pipeline.startAggregator('cfg-1', { TALLY_DEDUP_HORIZON_MS: '600000', TALLY_ALLOWED_LATENESS_MS: '60000' });
    const strangerInOldWindow: HandEvent = { ...old[0], impression_id: 'cfg-stranger' };
    await produceEvents(sb.config, [...old, strangerInOldWindow], (i) => (i % 2 === 0 ? 'home' : 'foreign'));
    await produceEvents(sb.config, recent.slice(0, 100), () => 'nokey');
    truth = truthOf(sb.config, 'cfg-', [...old, ...recent], 100, old.length + 1);
    await assertExact(pipeline, truth);
    await agg.stop();

    // A 1-second horizon: the recent windows are now past it; their late copies are too late, not counted.
    agg = pipeline.startAggregator('cfg-1', { TALLY_DEDUP_HORIZON_MS: '1000', TALLY_ALLOWED_LATENESS_MS: '0' });
    const fresh = spreadEvents('cfg-fresh-', 200, Date.now() - 500, Date.now());
    await produceEvents(sb.config, fresh);
    await awaitWatermark(sb.config, T + 7_000, { timeoutMs: 60_000 });
    await produceEvents(sb.config, recent.slice(100, 200));
    truth = truthOf(sb.config, 'cfg-', [...old, ...recent, ...fresh], 100, old.length + 1 + 100);
    await assertExact(pipeline, truth);
    await agg.stop();

    // Settings that cannot change once data flows: refused at start, naming the variable and both values.
    for (const [variable, value, stored] of [['TALLY_WINDOW_MS', '10000', '5000'], ['TALLY_PARTITIONS', '4', '8']] as const) {
      const refused = pipeline.startAggregator('cfg-1', { [variable]: value });
      await eventually(`the aggregator with ${variable}=${value} to exit`, async () => !refused.alive, 60_000, 200);
      assert.equal(refused.child.exitCode, 1);
      assert.match(refused.log(), new RegExp(`${variable}=${value}.*${variable}=${stored}`));
    }
    await assertExact(pipeline, truth);
  });

  it('one row past 2^53 micros of spend stays exact in Kafka, ClickHouse, the API and the dashboard', async () => {
    await setUp('money', { TALLY_WINDOW_MS: '60000' });
    const built = ensureWebBuild(() => undefined);
    pipeline.startSink();
    pipeline.startAggregator();
    const ts = Date.now();
    // Every id homed on partition 0, so one row (window, advertiser, campaign, partition 0) holds them all.
    const ids = idsWithHome('money-', 10_001, 0, sb.config.partitions);
    const events: HandEvent[] = ids.map((id, i) => ({ impression_id: id, ts, advertiser_id: 'money-adv', campaign_id: 'money-cmp', cost_micros: i === 0 ? 7 : 1_000_000_000_000 }));
    // 10^16 + 7 micros: past 2^53 (about 9.007 × 10^15), where a double no longer holds every integer.
    const total = 10_000n * 1_000_000_000_000n + 7n;
    await produceEvents(sb.config, events, (i) => (i % 2 === 0 ? 'home' : 'nokey'));

    const db = sb.config.clickhouse.database;
    await eventually('the row in ClickHouse', async () => {
      const rows = await query<{ s: string; n: string }>(`SELECT toString(sum(spend_micros)) AS s, sum(impressions) AS n FROM ${db}.impression_counts FINAL WHERE campaign_id = 'money-cmp'`);
      return rows[0]?.s === total.toString() && Number(rows[0].n) === events.length;
    }, 60_000);
    const rows = await query<{ p: number; s: string }>(`SELECT source_partition AS p, toString(spend_micros) AS s FROM ${db}.impression_counts FINAL WHERE campaign_id = 'money-cmp'`);
    assert.deepEqual(rows.map((r) => [Number(r.p), r.s]), [[0, total.toString()]], 'ClickHouse: one row, exact');
    assert.equal(Number((await query<{ n: string }>(`SELECT count() AS n FROM ${db}.dead_letters`))[0].n), 0, 'nothing dead-lettered');

    // Kafka: the row's last committed version carries the exact digits.
    const key = `${ts - (ts % 60_000)}|money-adv|money-cmp|0`;
    let last: Buffer | null = null;
    await readTopicToEnd(sb.config.kafka.brokers, sb.config.topics.counts, (m) => { if (m.key?.toString() === key) last = m.value ?? null; });
    assert.equal((JSON.parse(String(last)) as { spend_micros: unknown }).spend_micros, total.toString(), 'Kafka: digits, not a rounded number');

    // The API and the dashboard, through a real `tally api`.
    const ch = createClickHouse(sb.config);
    const store = TokenStore.forClickHouse(ch, db);
    const token = (await store.create('money', ['advertiser:money-adv'])).token;
    await ch.close();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    await built;
    const api = new RoleProcess('api', { ...sb.env, TALLY_HTTP_PORT: String(port) }, ['--no-web-build']);
    let browser: Browser | undefined;
    try {
      await eventually('tally api to answer', async () => (await fetch(`${base}/healthz`)).ok, 60_000, 200);
      const day = ts - (ts % 86_400_000);
      const res = await fetch(`${base}/api/v1/counts?advertiser_id=money-adv&from=${day}&to=${day + 86_400_000}&granularity=day`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      const body = await res.json() as CountsResponse;
      assert.deepEqual([body.rows[0].spendMicros, body.totals.spendMicros], [total.toString(), total.toString()], 'API: a string of digits above 2^53');

      browser = await launchChromium(() => undefined);
      const page = await browser.newPage();
      await page.goto(`${base}/`);
      await page.locator('[data-testid=token-input]').fill(token);
      await page.locator('[data-testid=signin-submit]').click();
      await eventually('the dashboard to show the spend', async () => parseMicros(await textOf(page, 'total-spend-today')) === total, 30_000, 200);
      assert.equal(parseMicros(await textOf(page, 'campaign-spend-money-cmp')), total, 'dashboard: exact to the micro');
    } finally {
      await browser?.close();
      await api.stop();
    }
  });
});
