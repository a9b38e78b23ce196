/**
 * Advertiser reporting in a real browser against the real pipeline (issue 15): hand-made
 * impressions with known creatives, publishers, countries and devices (some without a usable
 * value: `unknown`; exact duplicates; a value with a comma and quotes, one a spreadsheet would run
 * as a formula) → aggregator (exactly once, breakdowns in the same transaction) → `tally sink` →
 * ClickHouse → `tally api` → the production Vue build in headless Chromium.
 *
 * An advertiser picks a range, downloads the overview's campaign table as CSV (its rows as shown,
 * summing to the page's totals and the truth), opens a campaign from that table and sees every
 * breakdown equal the ground truth, value by value, impressions and spend to the micro; sorting
 * reorders the rows; a downloaded CSV has exactly the rows shown, in the order shown, and sums to
 * the page's totals; new impressions reach the campaign's open window live and, within a refresh,
 * its breakdowns. Neither page overflows a 390 px phone screen.
 *
 * Screenshots go to test-artifacts/dashboard-breakdown-{range,campaign}-{laptop,phone}.png.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { BreakdownResponse, CountsResponse, Dimension, DimensionsResponse } from '../../server/src/contracts/api-types.js';
import { launchChromium, parseCsv, parseMicros, textOf } from '../kit/browser.js';
import { produceEvents, type HandEvent } from '../kit/hand-events.js';
import { artifactsDir, eventually, RoleProcess, sleep, type Sandbox } from '../kit/harness.js';
import { startDashboardStack } from '../kit/dashboard.js';
import { Pipeline } from '../kit/pipeline.js';

const DAY_MS = 86_400_000;
const say = (m: string) => process.stderr.write(`      [breakdown-e2e] ${m}\n`);
const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const parseCount = (text: string | null) => Number((text ?? '').replace(/[,\s]/g, '') || 'NaN');

/** An impression with breakdown fields: a string, missing, empty or not a string (the last three count as `unknown`). */
type ReportedEvent = HandEvent & Partial<Record<Dimension, unknown>>;

/** Per value: impressions and exact spend. */
type Breakdown = Map<string, { impressions: number; spendMicros: bigint }>;

/** The fields an event is given, and the value each must count under. */
const CREATIVES: Array<[unknown, string]> = [['cr-banner-a', 'cr-banner-a'], ['cr-video-15s', 'cr-video-15s'], ['cr-native-7', 'cr-native-7'], [undefined, 'unknown']];
const PUBLISHERS: Array<[unknown, string]> = [
  ['news.example', 'news.example'], ['pub,"quoted"', 'pub,"quoted"'], ['=1+2', '=1+2'], ['', 'unknown'], ['sports.example', 'sports.example'],
];
const COUNTRIES: Array<[unknown, string]> = [['DE', 'DE'], ['FR', 'FR'], ['US', 'US'], ['DE', 'DE'], [undefined, 'unknown'], ['GB', 'GB']];
const DEVICES: Array<[unknown, string]> = [['mobile', 'mobile'], ['desktop', 'desktop'], ['mobile', 'mobile'], [42, 'unknown'], ['tablet', 'tablet']];
const FIELDS: Record<Dimension, Array<[unknown, string]>> = { creative_id: CREATIVES, publisher_id: PUBLISHERS, country: COUNTRIES, device: DEVICES };

/** The ground truth of one campaign: distinct impressions, per dimension value and in total. */
class CampaignTruth {
  readonly events: ReportedEvent[] = [];
  readonly byDimension = new Map<Dimension, Breakdown>();

  constructor(readonly advertiserId: string, readonly campaignId: string) {}

  /** `n` impressions stamped at `now` and up to 4 steps before it (seconds: well within the allowed lateness). */
  make(prefix: string, n: number, now = Date.now(), stepMs = 1_000): ReportedEvent[] {
    const made: ReportedEvent[] = [];
    for (let k = 0; k < n; k++) {
      const i = this.events.length;
      const e: ReportedEvent = {
        impression_id: `${prefix}${this.campaignId}-${i}`, ts: now - (i % 5) * stepMs,
        advertiser_id: this.advertiserId, campaign_id: this.campaignId, cost_micros: 1_000 + ((i * 7919) % 900_000),
      };
      for (const [d, choices] of Object.entries(FIELDS) as Array<[Dimension, Array<[unknown, string]>]>) {
        const [field, counted] = choices[i % choices.length];
        if (field !== undefined) e[d] = field;
        const b = this.byDimension.get(d) ?? new Map();
        const v = b.get(counted) ?? { impressions: 0, spendMicros: 0n };
        v.impressions++;
        v.spendMicros += BigInt(e.cost_micros);
        b.set(counted, v);
        this.byDimension.set(d, b);
      }
      this.events.push(e);
      made.push(e);
    }
    return made;
  }

  totals(): { impressions: number; spendMicros: bigint } {
    return { impressions: this.events.length, spendMicros: this.events.reduce((s, e) => s + BigInt(e.cost_micros), 0n) };
  }

  /** Distinct impressions in the window starting at `windowStart`. */
  inWindow(windowStart: number, windowMs: number): number {
    return this.events.filter((e) => e.ts >= windowStart && e.ts < windowStart + windowMs).length;
  }
}

/** value → "impressions spendMicros", for deepEqual with readable failures. */
function asRecord(b: Breakdown | Array<{ value: string; impressions: number; spendMicros: bigint }>): Record<string, string> {
  const entries = b instanceof Map ? [...b].map(([value, v]) => ({ value, ...v })) : b;
  return Object.fromEntries(entries.map((r) => [r.value, `${r.impressions} ${r.spendMicros}`]).sort(([a], [c]) => (a < c ? -1 : 1)));
}

/** A breakdown table's rows as the page shows them, top to bottom. */
async function tableOf(page: Page, dimension: Dimension): Promise<Array<{ value: string; impressions: number; spendMicros: bigint; maturity: string }>> {
  const cells = await page.locator(`[data-testid="breakdown-${dimension}"] [data-testid=breakdown-row]`).evaluateAll((rows) => rows.map((r) => [
    r.getAttribute('data-value') ?? '',
    r.querySelector('[data-testid=breakdown-impressions]')?.textContent ?? '',
    r.querySelector('[data-testid=breakdown-spend]')?.textContent ?? '',
    r.querySelector('[data-testid=maturity-badge]')?.getAttribute('data-maturity') ?? '',
  ]));
  return cells.map(([value, impressions, spend, maturity]) => ({ value, impressions: parseCount(impressions), spendMicros: parseMicros(spend), maturity }));
}

async function pageTotals(page: Page, dimension: Dimension): Promise<{ impressions: number; spendMicros: bigint }> {
  const card = page.locator(`[data-testid="breakdown-${dimension}"]`);
  return {
    impressions: parseCount(await card.locator('[data-testid=breakdown-total-impressions]').textContent({ timeout: 5_000 })),
    spendMicros: parseMicros(await card.locator('[data-testid=breakdown-total-spend]').textContent({ timeout: 5_000 })),
  };
}

/** Clicks the CSV button with this data-testid and returns the file's name and rows (header first). */
async function downloadCsv(page: Page, button: string): Promise<{ name: string; rows: string[][] }> {
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 15_000 }),
    page.locator(`[data-testid="${button}"]`).click(),
  ]);
  const saved = path.join(artifactsDir, `dashboard-breakdown-${download.suggestedFilename()}`);
  await download.saveAs(saved);
  const text = fs.readFileSync(saved, 'utf8');
  fs.rmSync(saved, { force: true });
  return { name: download.suggestedFilename(), rows: parseCsv(text) };
}

/** The page is no wider than the screen: wide tables scroll inside their own box. */
async function assertFitsWidth(page: Page, what: string): Promise<void> {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `${what} is ${scroll} px wide on a ${width} px screen`);
}

/** The charts redrawn at the current width (their ResizeObserver resizes the canvas) before a screenshot. */
async function chartsSettled(page: Page): Promise<void> {
  await page.waitForFunction(() => [...document.querySelectorAll('[role=img]')].every((chart) => {
    const canvas = chart.querySelector('canvas');
    return canvas !== null && Math.abs(canvas.clientWidth - chart.clientWidth) < 2;
  }), undefined, { timeout: 5_000 });
}

describe('dashboard breakdown e2e (headless Chromium, real pipeline, `tally api`)', function () {
  this.timeout(600_000);

  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess | undefined;
  let baseUrl: string;
  let browser: Browser | undefined;
  let token = '';
  const prefix = `brk${crypto.randomBytes(3).toString('hex')}-`;
  const advA = `${prefix}adv-1`;
  const main = new CampaignTruth(advA, `${advA}-cmp-1`);
  const second = new CampaignTruth(advA, `${advA}-cmp-2`);
  const other = new CampaignTruth(`${prefix}adv-2`, `${prefix}adv-2-cmp-1`);
  // The range picked on the page: yesterday and today (UTC), so a run across midnight still holds every event.
  const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
  const range = { fromDay: utcDay(today - DAY_MS), toDay: utcDay(today), from: today - DAY_MS, to: today + DAY_MS };

  const apiGet = async <T>(p: string): Promise<T> => {
    const res = await fetch(`${baseUrl}${p}`, { headers: { Authorization: `Bearer ${token}` } });
    const body = await res.text();
    assert.equal(res.status, 200, `${p}: ${res.status} ${body}`);
    return JSON.parse(body) as T;
  };
  const breakdownOf = (campaign: CampaignTruth, d: Dimension) => apiGet<BreakdownResponse>(
    `/api/v1/breakdown?dimension=${d}&advertiser_id=${campaign.advertiserId}&campaign_id=${campaign.campaignId}&from=${range.from}&to=${range.to}`);

  /** Produces the events and, of every `copies`th one, an exact duplicate; resolves on the broker's acks. */
  async function produce(events: ReportedEvent[], copies = 0): Promise<void> {
    const duplicates = copies > 0 ? events.filter((_, i) => i % copies === 0) : [];
    await produceEvents(sb.config, [...events, ...duplicates]);
  }

  /** Until the API's breakdowns of the main campaign equal the truth in every dimension (and /counts agrees); paced below the API's rate limit. */
  async function untilApiShowsTruth(dimensions: Dimension[], timeoutMs: number): Promise<void> {
    const want = main.totals();
    let last = 'no answer yet';
    await eventually('the API to show the breakdowns of the truth', async () => {
      for (const d of dimensions) {
        const b = await breakdownOf(main, d);
        const shown = JSON.stringify(asRecord(b.rows.map((r) => ({ value: r.value, impressions: r.impressions, spendMicros: BigInt(r.spendMicros) }))));
        const truth = JSON.stringify(asRecord(main.byDimension.get(d)!));
        last = `${d}: API ${shown}, truth ${truth}`;
        if (shown !== truth) return false;
      }
      const counts = await apiGet<CountsResponse>(`/api/v1/counts?advertiser_id=${advA}&campaign_id=${main.campaignId}&from=${range.from}&to=${range.to}&granularity=day`);
      last = `counts totals ${JSON.stringify(counts.totals)}, truth ${want.impressions} ${want.spendMicros}`;
      return counts.totals.impressions === want.impressions && BigInt(counts.totals.spendMicros) === want.spendMicros;
    }, timeoutMs, 1_500).catch((err: unknown) => {
      throw new Error(`${String(err)}; last: ${last}\n${pipeline.logs()}`);
    });
  }

  before(async function () {
    let tokens: Record<string, string>;
    ({ sb, pipeline, api, baseUrl, tokens } = await startDashboardStack('breakdown-ui', { 'breakdown e2e advertiser A': [`advertiser:${advA}`] }, say));
    token = tokens['breakdown e2e advertiser A'];

    // The main campaign (a duplicate of every 7th), a second one for the table, and another advertiser's.
    await produce(main.make(prefix, 240), 7);
    await produce(second.make(prefix, 60), 9);
    await produce(other.make(prefix, 40));
    const { dimensions } = await apiGet<DimensionsResponse>('/api/v1/dimensions');
    assert.deepEqual(dimensions, ['creative_id', 'publisher_id', 'country', 'device'], 'the default dimensions');
    const started = Date.now();
    await untilApiShowsTruth(dimensions, 120_000);
    say(`${main.events.length + second.events.length + other.events.length} impressions (+ duplicates): the API's breakdowns equal the truth after ${Date.now() - started} ms`);

    browser = await launchChromium(say);
    fs.mkdirSync(artifactsDir, { recursive: true });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await api?.stop().catch(() => undefined);
    await pipeline?.stopAll().catch(() => undefined);
    await sb?.cleanup();
  });

  it('an advertiser picks a range, opens a campaign, sees every breakdown equal the truth and downloads CSVs that sum to the page', async () => {
    // A time zone far from UTC, so the local line of the picker says something of its own.
    const context = await browser!.newContext({ viewport: { width: 1366, height: 768 }, timezoneId: 'America/New_York', acceptDownloads: true });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    const dimensions = Object.keys(FIELDS) as Dimension[];

    try {
      await page.goto(`${baseUrl}/`);
      await page.locator('[data-testid=token-input]').fill(token);
      await page.locator('[data-testid=signin-submit]').click();
      await page.locator('[data-testid=total-impressions-today]').waitFor({ timeout: 30_000 });

      // 1. The range: a preset, then yesterday and today picked by hand; UTC and local time side by side.
      await page.locator('[data-testid=date-range-last7]').click();
      await eventually('the last 7 days', async () => (await textOf(page, 'date-range-utc')) === `${utcDay(today - 7 * DAY_MS)} 00:00 – ${utcDay(today)} 00:00 UTC`, 5_000, 100);
      await page.locator('[data-testid=date-range-custom]').click();
      await page.locator('[data-testid=date-range-from]').fill(range.fromDay);
      await page.locator('[data-testid=date-range-to]').fill(range.toDay);
      await eventually('the picked days', async () => (await textOf(page, 'date-range-utc')) === `${range.fromDay} 00:00 – ${utcDay(range.to)} 00:00 UTC`, 5_000, 100);
      // New York is 4 or 5 hours behind UTC (each end with its own offset if daylight saving time changes in between).
      assert.match((await textOf(page, 'date-range-local')) ?? '',
        /^\d{4}-\d{2}-\d{2} (19|20):00( \(UTC-[45]\))? – \d{4}-\d{2}-\d{2} (19|20):00( \(UTC-[45]\))? America\/New_York( \(UTC-[45]\))?$/);
      assert.equal(await page.locator('[data-testid=range-report]').getAttribute('data-source'), 'clickhouse', 'two days come from ClickHouse');

      // 2. The overview's campaign table for the range: A's two campaigns, exact; never B's.
      for (const c of [main, second]) {
        await eventually(`${c.campaignId} in the range table`, async () => parseCount(await textOf(page, `campaign-impressions-${c.campaignId}`)) === c.totals().impressions, 20_000, 200);
        assert.equal(parseMicros(await textOf(page, `campaign-spend-${c.campaignId}`)), c.totals().spendMicros);
      }
      assert.equal(await page.locator(`[data-testid="campaign-row-${other.campaignId}"]`).count(), 0);
      // Its CSV: the rows shown, in the order shown, exact; they sum to the table's totals and the truth's.
      // (No named function inside: the page has no __name helper of the test's transpiler.)
      const table = await page.locator('[data-testid=campaign-table] tbody tr').evaluateAll((rows) => rows.map((r) => {
        const id = (r.getAttribute('data-testid') ?? '').replace(/^campaign-row-/, '');
        return [id, ...['impressions', 'spend', 'cpm'].map((what) => r.querySelector(`[data-testid="campaign-${what}-${id}"]`)?.textContent ?? ''),
          r.querySelector(`[data-testid="campaign-maturity-${id}"] [data-testid=maturity-badge]`)?.getAttribute('data-maturity') ?? ''];
      }));
      const campaigns = await downloadCsv(page, 'campaign-csv');
      assert.equal(campaigns.name, `tally-${advA}-campaigns-${range.fromDay}-${range.toDay}.csv`);
      assert.deepEqual(campaigns.rows[0], ['advertiser_id', 'campaign_id', 'impressions', 'spend', 'cpm', 'maturity']);
      const campaignLines = campaigns.rows.slice(1);
      assert.ok(campaignLines.every((l) => l.length === 6 && /^\d+\.\d{6}$/.test(l[3]) && /^\d+\.\d{6}$/.test(l[4])), 'six fields, spend and CPM with 6 decimals');
      assert.deepEqual(campaignLines.map((l) => [l[0], l[1], Number(l[2]), BigInt(l[3].replace('.', '')), BigInt(l[4].replace('.', '')), l[5]]),
        table.map(([id, impressions, spend, cpm, maturity]) => [advA, id, parseCount(impressions), parseMicros(spend), parseMicros(cpm), maturity]),
        "the campaign CSV's rows = the table's");
      const campaignSum = campaignLines.reduce((s, l) => ({ impressions: s.impressions + Number(l[2]), spendMicros: s.spendMicros + BigInt(l[3].replace('.', '')) }),
        { impressions: 0, spendMicros: 0n });
      assert.deepEqual(campaignSum, {
        impressions: parseCount(await textOf(page, 'campaign-total-impressions')), spendMicros: parseMicros(await textOf(page, 'campaign-total-spend')),
      }, "the campaign CSV sums to the table's totals");
      assert.deepEqual(campaignSum, { impressions: main.totals().impressions + second.totals().impressions, spendMicros: main.totals().spendMicros + second.totals().spendMicros },
        "the campaign CSV sums to the truth");
      await page.locator('[data-testid=range-chart] canvas').waitFor({ timeout: 5_000 });
      await chartsSettled(page);
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-breakdown-range-laptop.png'), fullPage: true });

      // 3. Drill down: the campaign's page keeps the range; its totals are the truth's.
      await page.locator(`[data-testid="campaign-link-${main.campaignId}"]`).click();
      await page.waitForURL((u) => u.pathname === `/campaigns/${advA}/${main.campaignId}` && u.searchParams.get('from') === range.fromDay, { timeout: 10_000 });
      await eventually('the campaign totals', async () => parseCount(await textOf(page, 'campaign-range-impressions')) === main.totals().impressions, 20_000, 200);
      assert.equal(parseMicros(await textOf(page, 'campaign-range-spend')), main.totals().spendMicros);

      // 4. Every dimension: each value's impressions and spend as the truth's, totals as the campaign's, every row's maturity shown.
      for (const d of dimensions) {
        const rows = page.locator(`[data-testid="breakdown-${d}"] [data-testid=breakdown-row]`);
        await eventually(`the ${d} table`, async () => JSON.stringify(asRecord(await tableOf(page, d))) === JSON.stringify(asRecord(main.byDimension.get(d)!)), 20_000, 250)
          .catch(async (err: unknown) => {
            throw new Error(`${String(err)}: page ${JSON.stringify(asRecord(await tableOf(page, d)))} truth ${JSON.stringify(asRecord(main.byDimension.get(d)!))}`);
          });
        const shown = await tableOf(page, d);
        assert.deepEqual(shown.map((r) => r.impressions), [...shown.map((r) => r.impressions)].sort((a, b) => b - a), `${d}: most impressions first`);
        assert.ok(shown.every((r) => ['live', 'provisional', 'final'].includes(r.maturity)), `${d} maturities: ${shown.map((r) => r.maturity).join(', ')}`);
        assert.deepEqual(await pageTotals(page, d), main.totals(), `${d} totals = the campaign's`);
        assert.equal(await page.locator(`[data-testid="breakdown-${d}"] [data-testid=breakdown-check]`).getAttribute('data-equal'), 'true');
        assert.ok(await rows.count() >= 4, `${d}: several values`);
      }
      assert.ok(main.byDimension.get('country')!.has('unknown') && (await tableOf(page, 'country')).some((r) => r.value === 'unknown'), 'missing values count as unknown');

      // 5. Sorting: by value A→Z, then Z→A; the CSV follows the order shown.
      await page.locator('[data-testid=breakdown-sort-country-value]').click();
      const az = (await tableOf(page, 'country')).map((r) => r.value);
      assert.deepEqual(az, [...az].sort((a, b) => a.localeCompare(b, 'en')), 'A→Z');
      await page.locator('[data-testid=breakdown-sort-country-value]').click();
      const za = (await tableOf(page, 'country')).map((r) => r.value);
      assert.deepEqual(za, [...az].reverse(), 'Z→A');
      assert.equal(await page.locator('[data-testid="breakdown-table-country"] th[aria-sort=descending]').count(), 1);

      for (const d of dimensions) {
        const { name, rows } = await downloadCsv(page, `breakdown-csv-${d}`);
        assert.equal(name, `tally-${advA}-${main.campaignId}-${d}-${range.fromDay}-${range.toDay}.csv`);
        assert.deepEqual(rows[0], [d, 'impressions', 'spend', 'share_of_impressions_pct', 'maturity']);
        const shown = await tableOf(page, d);
        const lines = rows.slice(1);
        assert.ok(lines.every((l) => l.length === 5 && /^\d+\.\d{6}$/.test(l[2])), `${d}: five fields, spend with 6 decimals`);
        // Exactly the rows shown, in the order shown; a value a spreadsheet would run as a formula is written with a leading quote.
        const csvRows = lines.map((l) => ({ value: /^'[-=+@]/.test(l[0]) ? l[0].slice(1) : l[0], impressions: Number(l[1]), spendMicros: BigInt(l[2].replace('.', '')) }));
        assert.deepEqual(csvRows, shown.map(({ value, impressions, spendMicros }) => ({ value, impressions, spendMicros })), `${d}: the CSV's rows`);
        const sum = csvRows.reduce((s, r) => ({ impressions: s.impressions + r.impressions, spendMicros: s.spendMicros + r.spendMicros }), { impressions: 0, spendMicros: 0n });
        assert.deepEqual(sum, await pageTotals(page, d), `${d}: the CSV sums to the page's totals`);
      }
      const publishers = (await downloadCsv(page, 'breakdown-csv-publisher_id')).rows.slice(1).map((l) => l[0]);
      assert.ok(publishers.includes('pub,"quoted"') && publishers.includes("'=1+2"), `quoting and formula guard: ${publishers.join(' | ')}`);

      // 6. Live: impressions of the campaign reach its open window within seconds, and its breakdowns within a refresh.
      const windowMs = sb.config.windowMs;
      if (Date.now() % windowMs > windowMs - 20_000) await sleep(windowMs - (Date.now() % windowMs) + 500);
      const now = Date.now();
      const windowStart = now - (now % windowMs);
      await produce(main.make(`${prefix}live-`, 9, now, 0));
      const inOpenWindow = main.inWindow(windowStart, windowMs);
      await eventually(`the open window shows ${inOpenWindow}`, async () => parseCount(await textOf(page, 'open-window-impressions')) === inOpenWindow, 15_000, 100);
      await eventually('the country table catching up', async () => JSON.stringify(asRecord(await tableOf(page, 'country'))) === JSON.stringify(asRecord(main.byDimension.get('country')!)), 40_000, 500);
      assert.deepEqual(await pageTotals(page, 'country'), main.totals());
      await eventually('the trend totals catching up', async () => parseCount(await textOf(page, 'campaign-range-impressions')) === main.totals().impressions, 20_000, 500);

      await chartsSettled(page);
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-breakdown-campaign-laptop.png'), fullPage: true });

      // 7. A phone: both pages fit the screen's width (tables scroll in their own box).
      await page.setViewportSize({ width: 390, height: 844 });
      await chartsSettled(page);
      await assertFitsWidth(page, 'the campaign page');
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-breakdown-campaign-phone.png'), fullPage: true });
      await page.locator('[data-testid=back-to-overview]').click();
      await page.locator(`[data-testid="campaign-impressions-${main.campaignId}"]`).waitFor({ timeout: 15_000 });
      assert.equal(await page.locator('[data-testid=date-range-custom]').getAttribute('aria-pressed'), 'true', 'the range came back with the link');
      await chartsSettled(page);
      await assertFitsWidth(page, 'the overview');
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-breakdown-range-phone.png'), fullPage: true });

      assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    } finally {
      await page.screenshot({ path: path.join(artifactsDir, 'dashboard-breakdown-last.png'), fullPage: true }).catch(() => undefined);
      await context.close();
    }
  });
});
