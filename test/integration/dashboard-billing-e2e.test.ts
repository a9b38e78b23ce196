/**
 * The billing page in a real browser against the real pipeline: Kafka → aggregator (exactly once)
 * → `tally sink` → ClickHouse → `tally api` → the production Vue build in headless Chromium.
 * An advertiser previews today's statement (provisional) and sees exactly the ground truth's
 * total, every row's maturity, and exactly the impressions that arrived too late for their own
 * (final) hour (late_unbillable, by original hour); the downloaded CSV (an authorized fetch saved
 * through a Blob URL) has the same totals line and a valid SHA-256 trailer, and with a breakdown
 * picked (country and device) a breakdown section whose values sum to those totals; the periods table
 * shows the hour made final here as final (since when, every partition closed) and the current
 * hour live with an estimate; yesterday's statement is final with its final_at; the advertiser
 * can pick only its own advertiser, and a forced request for another one shows the API's 403 message.
 *
 * Screenshots go to test-artifacts/dashboard-billing-*.png.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { homePartition } from '../../server/src/impression/index.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import { queryFrontier } from '../../server/src/ledger/index.js';
import { buildEventPlan, formatVerifyReport, planContext, producePlan, randomSeed, verify, type GroundTruth } from '../../server/src/tools/index.js';
import { launchChromium, parseCsv, parseMicros, textOf } from '../kit/browser.js';
import { artifactsDir, eventually, RoleProcess, type Sandbox } from '../kit/harness.js';
import { startDashboardStack } from '../kit/dashboard.js';
import { awaitFinal, Pipeline } from '../kit/pipeline.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const isoUtc = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');
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
  /** Periods starting before this are final (after the run); the newest final hour is finalBefore - 1 h. */
  let finalBefore = 0;
  /** A's impressions that arrived too late for their own hour, per that hour (ISO): what late_unbillable must say. */
  const lateOfA = new Map<string, bigint>();
  const prefix = `bill${crypto.randomBytes(3).toString('hex')}-`;
  const advA = `${prefix}adv-1`;
  const advB = `${prefix}adv-2`;
  let tokenA = '';

  /** Hand-made impressions, keyed by id (read at their home partition); resolves on the broker's acks. */
  async function produce(events: Array<{ impression_id: string }>): Promise<void> {
    const producer = new DeliveringProducer(sb.config.kafka.brokers, { 'client.id': 'billing-e2e' });
    await producer.connect();
    try {
      await producer.send(events.map((e) => ({ topic: sb.config.topics.impressions, partition: null, key: e.impression_id, value: Buffer.from(JSON.stringify(e)) })));
    } finally {
      await producer.disconnect();
    }
  }

  before(async function () {
    let tokens: Record<string, string>;
    ({ sb, pipeline, api, baseUrl, tokens } = await startDashboardStack('billing-ui', { 'billing e2e advertiser A': [`advertiser:${advA}`] }, say));
    tokenA = tokens['billing e2e advertiser A'];

    // A backfill first: one impression of another advertiser (outside the truth) stamped in the hour
    // before last, on each partition ahead of everything else. Each partition's ledger then starts at
    // that hour, which becomes final once event time is 1 h 30 s (lateness + dedup horizon) past its end.
    const H = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const backfill = new Map<number, { impression_id: string; ts: number; advertiser_id: string; campaign_id: string; cost_micros: number }>();
    for (let i = 0; backfill.size < sb.config.partitions; i++) {
      const id = `${prefix}backfill-${i}`;
      const home = homePartition(id, sb.config.partitions);
      if (!backfill.has(home)) backfill.set(home, { impression_id: id, ts: H - 2 * HOUR_MS + 60_000 + i, advertiser_id: 'backfill', campaign_id: 'backfill-cmp', cost_micros: 1_000 });
    }
    await produce([...backfill.values()]);

    // Impressions for A and B (duplicates, late and too-late events included), counted exactly before the page looks.
    const plan = buildEventPlan({ count: 2_000, advertisers: 2, campaigns: 3, idPrefix: prefix, duplicates: 0.1, bad: 3, tooLate: 2, lateWithinHorizon: 8, seed: randomSeed() },
      planContext(sb.config, Date.now()));
    await producePlan(sb.config, plan);
    truth = plan.truth;
    const result = await verify(sb.config, truth, { timeoutMs: 120_000, stableMs: 1_000 });
    assert.ok(result.ok, `ClickHouse differs from the ground truth:\n${formatVerifyReport(result)}\n${pipeline.logs()}`);
    say(`generated ${truth.counts.sent} records; ClickHouse equals the truth after ${result.elapsedMs} ms`);
    const addLate = (e: { advertiser_id: string; ts: number }) => {
      if (e.advertiser_id !== advA) return;
      const hour = isoUtc(e.ts - (e.ts % HOUR_MS));
      lateOfA.set(hour, (lateOfA.get(hour) ?? 0n) + 1n);
    };
    for (const r of plan.records) if (r.kind === 'too_late') addLate(JSON.parse(r.value) as { advertiser_id: string; ts: number });

    // Event time moves on until the hour before last is final (closed in every partition)…
    await awaitFinal(sb.config, H - HOUR_MS);
    const ch2 = createClickHouse(sb.config);
    try {
      finalBefore = (await queryFrontier(ch2, sb.config.clickhouse.database, sb.config.partitions)).finalBefore ?? 0;
    } finally {
      await ch2.close();
    }
    // … then 3 impressions of A stamped in that final hour arrive: unbillable, reported by arrival in today's statement.
    const late = Array.from({ length: 3 }, (_, i) => ({
      impression_id: `${prefix}final-late-${i}`, ts: finalBefore - HOUR_MS + 60_000 + i, advertiser_id: advA, campaign_id: `${advA}-cmp-1`, cost_micros: 1_000,
    }));
    await produce(late);
    late.forEach(addLate);
    const lateTotal = [...lateOfA.values()].reduce((a, b) => a + b, 0n);
    const today = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
    const tomorrow = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS + DAY_MS).toISOString().slice(0, 10);
    await eventually(`A's ${lateTotal} late events in today's statement`, async () => {
      const res = await fetch(`${baseUrl}/api/v1/billing/export?advertiser_id=${advA}&from=${today}&to=${tomorrow}&format=json`, { headers: { Authorization: `Bearer ${tokenA}` } });
      const body = await res.json() as { late_unbillable?: { events: string } };
      return body.late_unbillable?.events === lateTotal.toString();
    }, 60_000, 250);
    say(`final before ${isoUtc(finalBefore)}; A's late, unbillable events: ${[...lateOfA].map(([h, n]) => `${h} ${n}`).join(', ')}`);

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
      // Every row and the totals say how settled they are: today is still open, so the totals are live.
      const rowMaturities = await page.locator('[data-testid=billing-row] [data-testid=maturity-badge]').evaluateAll((els) => els.map((e) => e.getAttribute('data-maturity')));
      assert.equal(rowMaturities.length, rowCount, 'a maturity badge on every row');
      assert.ok(rowMaturities.every((m) => m === 'live' || m === 'provisional' || m === 'final'), `row maturities: ${rowMaturities.join(', ')}`);
      assert.equal(await page.locator('[data-testid=billing-totals-row]').getAttribute('data-maturity'), 'live', "today's totals are live");
      assert.match((await page.locator('[data-testid=billing-totals-row] [data-testid=maturity-badge]').textContent()) ?? '', /live/);
      // The impressions that came too late for their own (final) hour: counted by arrival, per original hour, not billed.
      const lateTotal = [...lateOfA.values()].reduce((a, b) => a + b, 0n);
      assert.equal(parseCount(await textOf(page, 'billing-late-unbillable', 5_000)), lateTotal, 'late, not billed = the too-late events of A');
      const lateRows = await page.locator('[data-testid=billing-late-period]').evaluateAll((els) => els.map((e) => [
        e.getAttribute('data-period-start'), e.querySelector('td.r')?.textContent?.trim() ?? '']));
      assert.deepEqual(lateRows, [...lateOfA].sort(([a], [b]) => (a < b ? -1 : 1)).map(([h, n]) => [h, n.toString()]), 'late events per original hour');
      assert.match((await textOf(page, 'billing-late', 5_000)) ?? '', /never billed/);
      // Lineage: today's final hours (if today has any yet) name every partition's offsets.
      if (finalBefore - HOUR_MS >= dayStart) {
        assert.equal(await page.locator('[data-testid=billing-lineage-row]').count(), sb.config.partitions, 'lineage: one row per partition');
        assert.match((await page.locator('[data-testid=billing-lineage-row]').first().textContent()) ?? '', /impressions \[[\d,–]+, [\d,]+\)/);
      } else {
        await page.locator('[data-testid=billing-lineage-empty]').waitFor({ timeout: 5_000 });
      }
      say(`preview: ${shownImpressions} impressions in ${rowCount} rows, late and unbillable ${await textOf(page, 'billing-late-unbillable', 5_000)}`);
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
      assert.ok(lines.includes(`# late_unbillable: ${lateTotal}`), 'the file reports the late events');

      // With a breakdown by country and device: the file named as the server names it, a breakdown
      // section after the totals, each dimension's values summing to the totals (the truth's).
      await page.locator('[data-testid=billing-breakdown-country]').click();
      await page.locator('[data-testid=billing-breakdown-device]').click();
      const [byDownload] = await Promise.all([
        page.waitForEvent('download', { timeout: 30_000 }),
        page.locator('[data-testid=billing-download]').click(),
      ]);
      assert.equal(byDownload.suggestedFilename(), `tally-${advA}-${today}-${today}-by-country-device.csv`);
      const bySaved = path.join(artifactsDir, `dashboard-billing-${byDownload.suggestedFilename()}`);
      await byDownload.saveAs(bySaved);
      const byCsv = fs.readFileSync(bySaved, 'utf8');
      fs.rmSync(bySaved, { force: true });
      const byLines = byCsv.split('\n');
      assert.ok(byLines.includes('# breakdown: country,device'), 'the header names the breakdown');
      const section = byLines.indexOf('# section: breakdowns');
      assert.ok(section > byLines.findIndex((l) => l.startsWith('total,')), `a breakdown section after the totals:\n${byCsv.slice(0, 800)}`);
      // The section's lines, parsed as CSV (a value may be quoted), up to the digest.
      const [header, ...breakdownLines] = parseCsv(byLines.slice(section + 1).join('\n').replace(/# sha256: [0-9a-f]{64}\n$/, ''));
      assert.deepEqual(header, ['period_start', 'advertiser_id', 'campaign_id', 'dimension', 'value', 'impressions', 'spend_micros', 'spend', 'maturity']);
      assert.ok(breakdownLines.length > 0 && breakdownLines.every((l) => l.length === 9 && l[1] === advA), 'breakdown lines of nine fields, all of A');
      for (const d of ['country', 'device']) {
        const sum = breakdownLines.filter((l) => l[3] === d).reduce((t, l) => ({ impressions: t.impressions + BigInt(l[5]), spendMicros: t.spendMicros + BigInt(l[6]) }),
          { impressions: 0n, spendMicros: 0n });
        assert.deepEqual(sum, expected, `the ${d} values sum to the totals (the truth's)`);
      }
      await page.locator('[data-testid=billing-breakdown-none]').click();

      // The periods table: the hour made final above is final (since when, closed by every partition); the current one is live.
      const finalRow = page.locator(`[data-testid=period-row][data-period-start="${isoUtc(finalBefore - HOUR_MS)}"]`);
      await finalRow.waitFor({ timeout: 20_000 });
      assert.equal(await finalRow.getAttribute('data-maturity'), 'final');
      assert.match((await finalRow.locator('[data-testid=maturity-badge]').textContent()) ?? '', /final/);
      assert.match((await finalRow.locator('[data-testid=period-finality]').textContent()) ?? '', /^final since (\d{2}:\d{2}:\d{2} UTC|\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC)$/);
      assert.equal((await finalRow.locator('[data-testid=period-closed]').textContent())?.trim(), `${sb.config.partitions}/${sb.config.partitions}`);
      const newest = page.locator('[data-testid=period-row]').first();
      assert.equal(await newest.getAttribute('data-maturity'), 'live', 'the current hour is live');
      assert.match((await newest.locator('[data-testid=period-finality]').textContent()) ?? '', /^expected final ~/);
      assert.match((await textOf(page, 'billing-periods-explain', 5_000)) ?? '', /final once every partition's watermark has passed its end/);
      await page.locator('[data-testid=billing-periods]').screenshot({ path: path.join(artifactsDir, 'dashboard-billing-periods.png') });

      // Yesterday, once every hour of it is final: a final statement, with when it became final.
      if (finalBefore >= dayStart) {
        await page.locator('[data-testid=billing-preset-yesterday]').click();
        await page.locator('[data-testid=billing-preview-button]').click();
        await page.locator('[data-testid=billing-status][data-status=final]').waitFor({ timeout: 30_000 });
        assert.match((await textOf(page, 'billing-final-at', 5_000)) ?? '', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/);
        assert.match((await textOf(page, 'billing-status-explain', 5_000)) ?? '', /final \(since \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\)/);
        await page.screenshot({ path: path.join(artifactsDir, 'dashboard-billing-final.png'), fullPage: true });
      } else {
        say('yesterday is not final yet (the first hour of the UTC day): its final statement is not checked');
      }

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
