/**
 * The billing page in a real browser against the real pipeline: Kafka → aggregator (exactly once)
 * → `tally sink` → ClickHouse → `tally api` → the production Vue build in headless Chromium.
 * An advertiser previews today's statement (provisional) and sees exactly the ground truth's
 * total; the downloaded CSV (an authorized fetch saved through a Blob URL) has the same totals
 * line and a valid SHA-256 trailer; the advertiser can pick only its own advertiser, and a
 * forced request for another one shows the API's 403 message.
 *
 * Screenshots go to test-artifacts/dashboard-billing-*.png.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { ensureWebBuild } from '../../server/src/api/web-assets.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { formatVerifyReport, generate, verify, type GroundTruth } from '../../server/src/tools/index.js';
import { launchChromium, parseMicros, textOf } from './browser.js';
import { freePort, artifactsDir, createSandbox, eventually, RoleProcess, type Sandbox } from './harness.js';
import { Pipeline } from './pipeline.js';

const DAY_MS = 86_400_000;
const say = (m: string) => process.stderr.write(`      [billing-e2e] ${m}\n`);


/** The truth's totals of one advertiser for windows in the UTC day starting at dayStart. */
function truthForDay(truth: GroundTruth, advertiserId: string, dayStart: number): { impressions: bigint; spendMicros: bigint } {
  let impressions = 0n;
  let spendMicros = 0n;
  for (const r of truth.rows) {
    if (r.advertiserId !== advertiserId || r.windowStart < dayStart || r.windowStart >= dayStart + DAY_MS) continue;
    impressions += BigInt(r.impressions);
    spendMicros += BigInt(r.spendMicros);
  }
  return { impressions, spendMicros };
}

/** "1,234" → 1234n; "362.790040" → 362790040n micros. */
const parseCount = (text: string | null) => BigInt((text ?? '').replace(/[,\s]/g, '') || 'NaN');


describe('dashboard billing e2e (headless Chromium, real pipeline, `tally api`)', function () {
  this.timeout(600_000);

  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess | undefined;
  let baseUrl: string;
  let browser: Browser | undefined;
  let truth: GroundTruth;
  const prefix = `bill${crypto.randomBytes(3).toString('hex')}-`;
  const advA = `${prefix}adv-1`;
  const advB = `${prefix}adv-2`;
  let tokenA = '';

  before(async function () {
    const built = ensureWebBuild(say);
    sb = await createSandbox('billing-ui');
    pipeline = new Pipeline(sb);
    pipeline.startAggregator();
    pipeline.startSink();

    const ch = createClickHouse(sb.config);
    try {
      tokenA = (await TokenStore.forClickHouse(ch, sb.config.clickhouse.database).create('billing e2e advertiser A', [`advertiser:${advA}`])).token;
    } finally {
      await ch.close();
    }

    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    await built;
    api = new RoleProcess('api', { ...sb.env, TALLY_HTTP_PORT: String(port), TALLY_HTTP_HOST: '127.0.0.1' }, ['--no-web-build']);
    await eventually('tally api to answer /healthz', async () => (await fetch(`${baseUrl}/healthz`)).ok, 60_000, 200);

    // Impressions for A and B (duplicates, late and too-late events included), counted exactly before the page looks.
    truth = await generate(sb.config, { count: 2_000, advertisers: 2, campaigns: 3, idPrefix: prefix, duplicates: 0.1, bad: 3, tooLate: 2, lateWithinHorizon: 8 });
    const result = await verify(sb.config, truth, { timeoutMs: 120_000, stableMs: 1_000 });
    assert.ok(result.ok, `ClickHouse differs from the ground truth:\n${formatVerifyReport(result)}\n${pipeline.logs()}`);
    say(`generated ${truth.counts.sent} records; ClickHouse equals the truth after ${result.elapsedMs} ms`);

    browser = await launchChromium(say);
    fs.mkdirSync(artifactsDir, { recursive: true });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await api?.stop().catch(() => undefined);
    await pipeline?.stopAll().catch(() => undefined);
    await sb?.cleanup();
  });

  it("an advertiser previews and downloads today's statement, exact, and cannot bill another advertiser", async () => {
    const context = await browser!.newContext({ viewport: { width: 1366, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const dayStart = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    const today = new Date(dayStart).toISOString().slice(0, 10);
    const expected = truthForDay(truth, advA, dayStart);
    assert.ok(expected.impressions > 0n, `the run has impressions of ${advA} today`);

    try {
      await page.goto(`${baseUrl}/`);
      await page.locator('[data-testid=token-input]').fill(tokenA);
      await page.locator('[data-testid=signin-submit]').click();
      await page.locator('[data-testid=total-impressions-today]').waitFor({ timeout: 30_000 });
      await page.locator('[data-testid=nav-billing]').click();

      // The advertiser select lists exactly the token's own advertiser.
      const select = page.locator('[data-testid=billing-advertiser]');
      await select.waitFor({ timeout: 10_000 });
      const options = await select.locator('option').evaluateAll((els) => els.map((e) => (e as HTMLOptionElement).value));
      assert.deepEqual(options, [advA], 'the advertiser can pick only itself');
      assert.equal(await select.inputValue(), advA);

      // Today, day rows: the preview is provisional and its totals are the truth's.
      await page.locator('[data-testid=billing-preset-custom]').click();
      await page.locator('[data-testid=billing-from]').fill(today);
      await page.locator('[data-testid=billing-to]').fill(today);
      await page.locator('[data-testid=billing-preview-button]').click();
      const status = page.locator('[data-testid=billing-status]');
      await status.waitFor({ timeout: 30_000 });
      assert.equal(await status.getAttribute('data-status'), 'provisional');
      assert.match((await status.textContent()) ?? '', /provisional/);
      const shownImpressions = parseCount(await textOf(page, 'billing-total-impressions', 5_000));
      assert.equal(shownImpressions, expected.impressions, 'total impressions on the page = the truth');
      assert.equal(parseMicros(await textOf(page, 'billing-total-spend', 5_000)), expected.spendMicros, 'total spend on the page = the truth, to the micro');
      const rowCount = await page.locator('[data-testid=billing-row]').count();
      assert.ok(rowCount >= 1, 'rows shown');
      assert.match((await textOf(page, 'billing-sha256', 5_000)) ?? '', /^[0-9a-f]{64}$/);
      say(`preview: ${shownImpressions} impressions in ${rowCount} rows, too_late ${await textOf(page, 'billing-too-late', 5_000)}`);
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-billing.png'), fullPage: true });

      // Download (CSV): an authorized fetch saved as tally-<advertiser>-<from>-<to>.csv.
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 30_000 }),
        page.locator('[data-testid=billing-download]').click(),
      ]);
      assert.equal(download.suggestedFilename(), `tally-${advA}-${today}-${today}.csv`);
      const saved = path.join(artifactsDir, `dashboard-billing-${download.suggestedFilename()}`);
      await download.saveAs(saved);
      const csv = fs.readFileSync(saved, 'utf8');
      fs.rmSync(saved, { force: true });
      const lines = csv.split('\n');
      assert.ok(lines.includes('# status: provisional'), 'the file says provisional');
      const totalLine = lines.find((l) => l.startsWith('total,'));
      assert.ok(totalLine, `a totals line in the CSV:\n${csv.slice(0, 500)}`);
      const [, adv, , impressions, spendMicros] = totalLine.split(',');
      assert.equal(adv, advA);
      assert.equal(BigInt(impressions), expected.impressions, 'CSV totals line impressions = the truth');
      assert.equal(BigInt(spendMicros), expected.spendMicros, 'CSV totals line spend_micros = the truth');
      const trailer = /\n# sha256: ([0-9a-f]{64})\n$/.exec(csv);
      assert.ok(trailer, 'the CSV ends with its sha256');
      assert.equal(crypto.createHash('sha256').update(csv.slice(0, trailer.index + 1)).digest('hex'), trailer[1], 'the sha256 trailer matches the file');
      await page.locator('[data-testid=billing-downloaded]').waitFor({ timeout: 5_000 });
      assert.equal(await page.locator('[data-testid=billing-error]').count(), 0);

      // A forced request for B (the select tampered with): the API refuses, the page shows its 403 message.
      await page.evaluate(`(() => {
        const s = document.querySelector('[data-testid=billing-advertiser]');
        const o = document.createElement('option');
        o.value = ${JSON.stringify(advB)};
        o.textContent = ${JSON.stringify(advB)};
        s.appendChild(o);
        s.value = ${JSON.stringify(advB)};
        s.dispatchEvent(new Event('change', { bubbles: true }));
      })()`);
      await page.locator('[data-testid=billing-preview-button]').click();
      const error = page.locator('[data-testid=billing-error]');
      await error.waitFor({ timeout: 15_000 });
      const message = (await error.textContent()) ?? '';
      assert.match(message, /this token may not read that advertiser/, `the 403 message: ${message}`);
      assert.equal(await page.locator('[data-testid=billing-status]').count(), 0, 'no statement for B');
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-billing-forbidden.png'), fullPage: true });

      assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    } finally {
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-billing-last.png'), fullPage: true }).catch(() => undefined);
      await context.close();
    }
  });
});
