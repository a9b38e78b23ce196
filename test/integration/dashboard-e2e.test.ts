/**
 * The dashboard in a real browser against the real pipeline: Kafka → aggregator (exactly once) →
 * impression-counts → `tally api` (live feed over socket.io) → the production Vue build in
 * headless Chromium. An advertiser's page shows exactly its own totals, live, without reload;
 * another advertiser's campaigns never reach it (not in the DOM, not on the wire); a restart of
 * the API replaces the numbers with a fresh snapshot instead of adding to them. The delay from a
 * producer's acknowledgement to the number on the page is measured and logged.
 *
 * Screenshots go to test-artifacts/dashboard-*.png.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ensureWebBuild } from '../../server/src/api/web-assets.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import { generate, type GroundTruth } from '../../server/src/tools/index.js';
import { launchChromium, parseMicros, textOf } from '../kit/browser.js';
import { freePort, artifactsDir, createSandbox, eventually, RoleProcess, sleep, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';

const DAY_MS = 86_400_000;
const say = (m: string) => process.stderr.write(`      [dashboard-e2e] ${m}\n`);


/** Expected totals per campaign of one advertiser for windows starting at or after `from`. */
class Expected {
  readonly campaigns = new Map<string, { windowStart: number; impressions: number; spendMicros: bigint }[]>();

  constructor(readonly advertiserId: string) {}

  addTruth(truth: GroundTruth): void {
    for (const r of truth.rows) if (r.advertiserId === this.advertiserId) this.add(r.campaignId, r.windowStart, r.impressions, BigInt(r.spendMicros));
  }

  add(campaignId: string, windowStart: number, impressions: number, spendMicros: bigint): void {
    const list = this.campaigns.get(campaignId) ?? [];
    list.push({ windowStart, impressions, spendMicros });
    this.campaigns.set(campaignId, list);
  }

  /** Totals of the UTC day containing `now` (what the page calls "today"). */
  today(now = Date.now(), campaignId?: string): { impressions: number; spendMicros: bigint } {
    const from = Math.floor(now / DAY_MS) * DAY_MS;
    let impressions = 0;
    let spendMicros = 0n;
    for (const [c, list] of this.campaigns) {
      if (campaignId !== undefined && c !== campaignId) continue;
      for (const e of list) {
        if (e.windowStart < from) continue;
        impressions += e.impressions;
        spendMicros += e.spendMicros;
      }
    }
    return { impressions, spendMicros };
  }
}

/** "1,234" → 1234; "362.790040" → 362790040n micros. */
const parseCount = (text: string | null) => Number((text ?? '').replace(/[,\s]/g, ''));


/**
 * Resolves with the page's own Date.now() at the moment `[data-testid=testid]` first shows
 * `expected` (digits compared, grouping ignored): the e2e delay's end.
 */
async function whenCountShows(page: Page, testid: string, expected: () => number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  // The expectation may move (a UTC day boundary): re-arm with the current value every few seconds.
  for (;;) {
    const want = expected();
    try {
      const handle = await page.waitForFunction(({ id, want: w }) => {
        const el = document.querySelector(`[data-testid="${id}"]`);
        return el !== null && el.textContent?.replace(/[,\s]/g, '') === String(w) ? Date.now() : false;
      }, { id: testid, want }, { polling: 10, timeout: Math.min(5_000, Math.max(1, deadline - Date.now())) });
      return (await handle.jsonValue()) as number;
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new Error(`${testid} did not show ${want} within ${timeoutMs} ms (shows ${JSON.stringify(await textOf(page, testid))}): ${String(err)}`);
      }
    }
  }
}

/**
 * Records, inside the page, whether `forbidden` ever appears in any text or attribute added to
 * the DOM. (A string, not a function: tsx would add helpers to a function that the page lacks.)
 */
async function watchForForbidden(context: BrowserContext, forbidden: string): Promise<void> {
  await context.addInitScript(`(() => {
    const f = ${JSON.stringify(forbidden)};
    const seen = window.__forbiddenSeen = [];
    const check = (s, where) => { if (s && s.includes(f)) seen.push(where + ': ' + s.slice(0, 200)); };
    const scan = (n) => {
      if (n.nodeType === Node.TEXT_NODE) check(n.textContent, 'text');
      else if (n instanceof Element) {
        for (const a of Array.from(n.attributes)) check(a.value, '@' + a.name);
        check(n.textContent, n.tagName);
      }
    };
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'characterData') check(r.target.textContent, 'text');
        else if (r.type === 'attributes') check(r.target.getAttribute(r.attributeName), '@' + r.attributeName);
        else r.addedNodes.forEach(scan);
      }
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
  })();`);
}

/** Everything the page receives from the live feed (socket.io polling responses and WebSocket frames). */
function recordLiveTraffic(page: Page): string[] {
  const seen: string[] = [];
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/socket.io/')) return;
    ws.on('framereceived', (f) => seen.push(typeof f.payload === 'string' ? f.payload : f.payload.toString('utf8')));
  });
  page.on('response', (res) => {
    if (!res.url().includes('/socket.io/')) return;
    res.text().then((t) => seen.push(t), () => undefined);
  });
  return seen;
}

async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.locator('[data-testid=token-input]').fill(token);
  await page.locator('[data-testid=signin-submit]').click();
  await page.locator('[data-testid=total-impressions-today]').waitFor({ timeout: 30_000 });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

describe('dashboard e2e (headless Chromium, real pipeline, `tally api`)', function () {
  this.timeout(600_000);

  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess | undefined;
  let apiEnv: NodeJS.ProcessEnv;
  let baseUrl: string;
  let browser: Browser | undefined;
  let producer: DeliveringProducer | undefined;
  const prefix = `dash${crypto.randomBytes(3).toString('hex')}-`;
  const advA = `${prefix}adv-1`;
  const advB = `${prefix}adv-2`;
  const tokens = { a: '', admin: '', revoked: { token: '', id: '' } };
  const expectedA = new Expected(advA);
  const expectedB = new Expected(advB);
  const delays: number[] = [];

  /**
   * The generated run for A and B (duplicates, late, too-late and malformed events included),
   * produced once: by the first test once its page shows the empty state, or by whichever test
   * needs the data when it runs alone.
   */
  let generatedRun: Promise<GroundTruth> | undefined;
  function produceGeneratedRun(): Promise<GroundTruth> {
    generatedRun ??= generate(sb.config, { count: 3_000, advertisers: 2, campaigns: 3, idPrefix: prefix, duplicates: 0.1, bad: 6, tooLate: 2, lateWithinHorizon: 12 })
      .then((truth) => {
        expectedA.addTruth(truth);
        expectedB.addTruth(truth);
        return truth;
      });
    return generatedRun;
  }

  const startApi = async () => {
    api = new RoleProcess('api', apiEnv, ['--no-web-build']);
    const started = Date.now();
    await eventually('tally api to answer /healthz', async () => (await fetch(`${baseUrl}/healthz`)).ok, 60_000, 200);
    say(`tally api up on ${baseUrl} in ${Date.now() - started} ms`);
  };

  before(async function () {
    const built = ensureWebBuild(say);
    sb = await createSandbox('dashboard');
    pipeline = new Pipeline(sb);
    pipeline.startAggregator();
    pipeline.startSink();

    const ch = createClickHouse(sb.config);
    try {
      const store = TokenStore.forClickHouse(ch, sb.config.clickhouse.database);
      tokens.a = (await store.create('e2e advertiser A', [`advertiser:${advA}`])).token;
      tokens.admin = (await store.create('e2e admin', ['admin'])).token;
      tokens.revoked = await store.create('e2e to revoke', [`advertiser:${advA}`]);
    } finally {
      await ch.close();
    }

    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    apiEnv = { ...sb.env, TALLY_HTTP_PORT: String(port), TALLY_HTTP_HOST: '127.0.0.1' };
    await built;
    await startApi();

    producer = new DeliveringProducer(sb.config.kafka.brokers, { 'client.id': 'dashboard-e2e' });
    await producer.connect();
    browser = await launchChromium(say);
    fs.mkdirSync(artifactsDir, { recursive: true });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await producer?.disconnect().catch(() => undefined);
    await api?.stop().catch(() => undefined);
    await pipeline?.stopAll().catch(() => undefined);
    await sb?.cleanup();
  });

  /** Produces hand-made impressions with current event times (and exact duplicates of some); resolves on the broker's acks. */
  async function produceLive(advertiserId: string, campaignId: string, n: number, duplicates: number, expected: Expected): Promise<number> {
    const now = Date.now();
    const windowStart = Math.floor(now / sb.config.windowMs) * sb.config.windowMs;
    const events = Array.from({ length: n }, (_, i) => ({
      impression_id: `${prefix}live-${crypto.randomBytes(6).toString('hex')}-${i}`,
      ts: now, advertiser_id: advertiserId, campaign_id: campaignId, cost_micros: 1_000 + ((i * 7919) % 5_000),
    }));
    const copies = events.slice(0, duplicates);
    const records = [...events, ...copies].map((e) => ({
      topic: sb.config.topics.impressions, partition: null, key: e.impression_id, value: Buffer.from(JSON.stringify(e)),
    }));
    await producer!.send(records);
    const ackedAt = Date.now();
    expected.add(campaignId, windowStart, n, events.reduce((s, e) => s + BigInt(e.cost_micros), 0n));
    return ackedAt;
  }

  it('an advertiser sees exactly its own totals, live; never another advertiser; a restart replaces, never adds', async () => {
    const context = await browser!.newContext({ viewport: { width: 1366, height: 900 } });
    await watchForForbidden(context, advB);
    const page = await context.newPage();
    const wire = recordLiveTraffic(page);
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));

    try {
      // Signed in before anything is produced: the page starts empty and fills up live, without reload.
      await signIn(page, baseUrl, tokens.a);
      assert.equal(parseCount(await textOf(page, 'total-impressions-today')), 0);
      await page.locator('[data-testid=overview-empty]').waitFor({ timeout: 10_000 });
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-empty.png') });

      // 1. A generated run for A and B: duplicates, late, too-late and malformed events included.
      const truth = await produceGeneratedRun();
      const ackedAt = Date.now();
      assert.ok(expectedA.today().impressions > 0 && expectedB.today().impressions > 0, 'the run has impressions of both advertisers today');
      const shownAt = await whenCountShows(page, 'total-impressions-today', () => expectedA.today().impressions, 60_000);
      say(`generated run (${truth.counts.sent} records, ${truth.counts.duplicatesSent} duplicates): A's total on the page ${shownAt - ackedAt} ms after the last ack`);

      // Per campaign, and spend to the micro.
      for (const campaignId of expectedA.campaigns.keys()) {
        await eventually(`campaign ${campaignId} row`, async () => parseCount(await textOf(page, `campaign-impressions-${campaignId}`)) === expectedA.today(Date.now(), campaignId).impressions, 10_000, 100);
      }
      await eventually("A's spend today to the micro", async () => parseMicros(await textOf(page, 'total-spend-today')) === expectedA.today().spendMicros, 10_000, 100);
      // Each campaign says how settled its total is (the least settled of its windows).
      for (const campaignId of expectedA.campaigns.keys()) {
        const badge = page.locator(`[data-testid="campaign-maturity-${campaignId}"] [data-testid=maturity-badge]`);
        const maturity = await badge.getAttribute('data-maturity', { timeout: 5_000 });
        assert.ok(maturity === 'live' || maturity === 'provisional' || maturity === 'final', `campaign ${campaignId} maturity ${maturity}`);
        assert.ok(((await badge.textContent()) ?? '').includes(maturity), 'the badge says it in words');
      }

      // 2. Live increments, small batches with exact duplicates, and B traffic in between: each new exact total, timed.
      const campaignA = [...expectedA.campaigns.keys()][0];
      for (let round = 0; round < 6; round++) {
        await produceLive(advB, `${advB}-cmp-1`, 5, 1, expectedB);
        const acked = await produceLive(advA, campaignA, 7 + round, 2, expectedA);
        const shown = await whenCountShows(page, 'total-impressions-today', () => expectedA.today().impressions, 30_000);
        delays.push(shown - acked);
        await sleep(300); // pacing between the rounds
      }
      say(`produce ack → number on the page: ${delays.map((d) => `${d}`).join(', ')} ms (median ${median(delays)} ms, max ${Math.max(...delays)} ms)`);
      assert.equal(parseCount(await textOf(page, `campaign-impressions-${campaignA}`)), expectedA.today(Date.now(), campaignA).impressions);
      assert.equal(parseMicros(await textOf(page, 'total-spend-today')), expectedA.today().spendMicros);
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-advertiser-laptop.png'), fullPage: true });

      // 3. The API goes away: the banner shows; it comes back: a fresh snapshot replaces the rows (same exact total, not doubled).
      await api!.stop();
      await page.locator('[data-testid=connection-banner]').waitFor({ state: 'visible', timeout: 15_000 });
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-connection-lost.png') });
      await startApi();
      await page.locator('[data-testid=connection-banner]').waitFor({ state: 'detached', timeout: 60_000 });
      await produceLive(advA, campaignA, 3, 1, expectedA);
      await whenCountShows(page, 'total-impressions-today', () => expectedA.today().impressions, 30_000);
      await sleep(1_000); // a negative check needs time: any late double-add would show up here
      assert.equal(parseCount(await textOf(page, 'total-impressions-today')), expectedA.today().impressions, 'after the reconnect');
      assert.equal(parseMicros(await textOf(page, 'total-spend-today')), expectedA.today().spendMicros, 'spend after the reconnect');

      await page.setViewportSize({ width: 390, height: 844 });
      // Before the screenshot: the chart redrawn at the phone width (its ResizeObserver resizes the canvas).
      await page.waitForFunction(() => {
        const chart = document.querySelector('[data-testid=window-chart]');
        const canvas = chart?.querySelector('canvas');
        return chart === null || (canvas !== null && canvas !== undefined && Math.abs(canvas.clientWidth - chart.clientWidth) < 2);
      }, undefined, { timeout: 5_000 });
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-advertiser-phone.png'), fullPage: true });

      // B never reached A: not in the DOM at any time, not on the wire, no B row.
      const seen = await page.evaluate(() => (window as unknown as { __forbiddenSeen?: string[] }).__forbiddenSeen ?? ['observer missing']);
      assert.deepEqual(seen, [], `advertiser B appeared in A's page: ${seen.slice(0, 3).join(' | ')}`);
      assert.ok(!(await page.content()).includes(advB), "B's id in the final page");
      assert.ok(wire.length > 0, 'live feed traffic was recorded');
      assert.ok(wire.some((m) => m.includes(advA)), "A's rows were on the wire");
      const leaked = wire.filter((m) => m.includes(advB));
      assert.equal(leaked.length, 0, `B's data was sent to A: ${leaked[0]?.slice(0, 300)}`);
      assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    } finally {
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-advertiser-last.png'), fullPage: true }).catch(() => undefined);
      await context.close();
    }
  });

  it('an admin switches advertisers and sees the pipeline status with the exact badge', async () => {
    const context = await browser!.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      await produceGeneratedRun();
      await signIn(page, baseUrl, tokens.admin);
      const switcher = page.locator('[data-testid=advertiser-switcher]');
      await eventually('the advertiser list', async () => (await switcher.locator(`option[value="${advB}"]`).count()) === 1, 20_000, 200);
      await switcher.selectOption(advB);
      await whenCountShows(page, 'total-impressions-today', () => expectedB.today().impressions, 20_000);
      assert.equal(parseMicros(await textOf(page, 'total-spend-today')), expectedB.today().spendMicros);
      assert.equal(await page.locator(`[data-testid^="campaign-row-${advA}"]`).count(), 0, "A's campaigns in B's view");

      await switcher.selectOption(advA);
      await whenCountShows(page, 'total-impressions-today', () => expectedA.today().impressions, 20_000);
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-admin-overview.png'), fullPage: true });

      await page.locator('[data-testid=nav-pipeline]').click();
      const badge = page.locator('[data-testid=exact-badge]');
      await badge.waitFor({ timeout: 20_000 });
      // Closed windows need the watermark to pass (the generated run's oldest are minutes old); the sink may lag a moment.
      let state: string | null = null;
      await eventually('the exact badge', async () => (state = await badge.getAttribute('data-exact')) === 'true', 90_000, 1_000).catch(() => undefined);
      say(`pipeline page: exact badge ${state}: ${await badge.textContent()}`);
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-pipeline.png'), fullPage: true });
      assert.equal(state, 'true', `the pipeline page is not exact: ${await badge.textContent()}`);
      // The generated run and the live batches both sent exact duplicates: the page must show them removed.
      assert.ok(parseCount(await textOf(page, 'pipeline-duplicates')) > 0);
      // No `tally reconcile` ran on this sandbox: the card says so and how to run it.
      const recon = page.locator('[data-testid=reconciliation]');
      assert.equal(await recon.getAttribute('data-state', { timeout: 5_000 }), 'never');
      assert.match((await recon.textContent()) ?? '', /Last reconciliation.*never run.*tally reconcile --from \d{4}-\d{2}-\d{2}T\d{2}:00:00Z --to \d{4}-\d{2}-\d{2}T\d{2}:00:00Z/s);
      assert.deepEqual(pageErrors, []);
    } finally {
      await context.close();
    }
  });

  it('a revoked token is signed out of the open dashboard within seconds', async () => {
    const context = await browser!.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    try {
      await produceGeneratedRun();
      await signIn(page, baseUrl, tokens.revoked.token);
      await whenCountShows(page, 'total-impressions-today', () => expectedA.today().impressions, 20_000);
      const ch = createClickHouse(sb.config);
      try {
        assert.equal(await TokenStore.forClickHouse(ch, sb.config.clickhouse.database).revoke(tokens.revoked.id), 'revoked');
      } finally {
        await ch.close();
      }
      const revokedAt = Date.now();
      await page.locator('[data-testid=signin-notice]').waitFor({ timeout: 15_000 });
      say(`revoked token: back on the sign-in page ${Date.now() - revokedAt} ms after the revoke`);
      assert.equal(await page.locator('[data-testid=total-impressions-today]').count(), 0);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('tally.token')), null, 'token dropped from sessionStorage');
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-revoked.png') });
    } finally {
      await context.close();
    }
  });
});
