/**
 * Billing statements with a breakdown section on the real stack: the whole pipeline (aggregator +
 * `tally sink`) fed with impressions carrying dimension values (some missing or unusable, some
 * spreadsheet-hostile, copies) across two past hours and the current one; then statements with
 * `breakdown=` over HTTP and the CLI. Each (period, campaign, dimension)'s values must equal what
 * was produced and sum exactly to the statement's row; the rows are those of the statement without
 * a breakdown, byte for byte; a final statement with a breakdown is byte-identical (same SHA-256)
 * after more data arrived for the later, non-final hour and too-late data for its own.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { FORMULA_TRIGGER, isoUtc, type JsonExport } from '../../server/src/billing/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { repoRoot } from '../../server/src/config/index.js';
import { dimensionValueOf, type Dimension } from '../../server/src/contracts/dimensions.js';
import type { GroundTruth } from '../../server/src/tools/index.js';
import { produceEvents, spreadEvents, truthOf, type HandEvent } from '../kit/hand-events.js';
import { createSandbox, eventually, sleep, type Sandbox } from '../kit/harness.js';
import { assertExact, awaitFinal, Pipeline } from '../kit/pipeline.js';
import { BillingServer, DAY, expectedRows, exportUrl, HOUR } from './billing-fixtures.js';

const DIMS: Dimension[] = ['creative_id', 'country', 'device'];
const ROUTES = ['home', 'foreign', 'nokey'] as const;
const ADVERTISERS = ['bbd-adv-1', 'bbd-adv-2'];

/** An event body as sent: the contract fields, and dimension fields of any type. */
type Event = HandEvent & Record<string, unknown>;

/** The event with dimension values by index: repeated ones, missing and unusable ones (unknown), a formula and a quoted comma. */
function withDimensions(e: HandEvent, i: number): Event {
  const out: Event = {
    impression_id: e.impression_id, ts: e.ts, cost_micros: e.cost_micros,
    advertiser_id: e.advertiser_id.replace(/^bbd-[a-z0-9]+-/, 'bbd-'), campaign_id: e.campaign_id.replace(/^bbd-[a-z0-9]+-/, 'bbd-'),
    creative_id: `cr-${i % 4}`,
    device: i % 5 === 0 ? 42 : ['mobile', 'desktop', 'ctv'][i % 3],
    publisher_id: `pub-${i % 3}`, // not counted here
  };
  if (i % 7 !== 0) out.country = ['DE', 'FR', 'US', 'Österreich', '=1+2', 'a,"b"\\c'][i % 6];
  return out;
}

/** Counted events by (period, campaign, dimension, value) → [impressions, spend]. */
function expectedValues(events: readonly Event[], adv: string, from: number, to: number, periodMs: number, dims: readonly Dimension[]): Map<string, [number, bigint]> {
  const out = new Map<string, [number, bigint]>();
  for (const e of events) {
    if (e.advertiser_id !== adv || e.ts < from || e.ts >= to) continue;
    for (const d of dims) {
      const key = [isoUtc(Math.floor(e.ts / periodMs) * periodMs), e.campaign_id, d, dimensionValueOf(e[d])].join('|');
      const [n, s] = out.get(key) ?? [0, 0n];
      out.set(key, [n + 1, s + BigInt(e.cost_micros)]);
    }
  }
  return out;
}

/** The cells of one CSV line (RFC 4180, no line breaks in a field). */
function csvCells(line: string): string[] {
  const cells: string[] = [];
  for (let i = 0; i <= line.length;) {
    if (line[i] === '"') {
      let cell = '';
      for (i++; ; i++) {
        if (line[i] === '"' && line[i + 1] === '"') { cell += '"'; i++; } else if (line[i] === '"') break; else cell += line[i];
      }
      cells.push(cell);
      i += 2;
    } else {
      const end = line.indexOf(',', i) < 0 ? line.length : line.indexOf(',', i);
      cells.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return cells;
}

interface Statement {
  meta: Record<string, string>;
  /** period, campaign, impressions, spend_micros. */
  rows: string[][];
  total: string[];
  /** period, campaign, dimension, value, impressions, spend_micros, spend, maturity. */
  values: string[][];
  /** The file without its breakdown (header line and section) and without its trailer. */
  withoutBreakdown: string;
}

/** A CSV statement with a breakdown, checked as it is read: its sections, their headers, the digest. */
function parseCsvStatement(text: string): Statement {
  const trailer = text.lastIndexOf('# sha256: ');
  assert.equal(text.slice(trailer), `# sha256: ${crypto.createHash('sha256').update(text.slice(0, trailer)).digest('hex')}\n`, 'the trailer is the sha256 of everything before it');
  const sectionAt = text.indexOf('# section: breakdowns\n');
  assert.ok(sectionAt > 0, 'a breakdown section');
  const main = text.slice(0, sectionAt).split('\n').slice(0, -1);
  const meta = Object.fromEntries(main.filter((l) => l.startsWith('# ')).map((l) => /^# ([a-z_]+): (.*)$/.exec(l)?.slice(1) ?? [l, '']));
  const data = main.filter((l) => !l.startsWith('# ')).map(csvCells);
  assert.deepEqual(data[0], ['period_start', 'advertiser_id', 'campaign_id', 'impressions', 'spend_micros', 'spend', 'duplicates_removed', 'maturity']);
  const section = text.slice(sectionAt, trailer).split('\n').slice(1, -1);
  assert.equal(section[0], 'period_start,advertiser_id,campaign_id,dimension,value,impressions,spend_micros,spend,maturity');
  const total = data[data.length - 1];
  assert.equal(total[0], 'total');
  return {
    meta, total, rows: data.slice(1, -1).map((r) => [r[0], r[2], r[3], r[4], r[7]]),
    values: section.slice(1).map(csvCells).map((c) => [c[0], c[2], c[3], c[4], c[5], c[6], c[7], c[8]]),
    withoutBreakdown: text.slice(0, sectionAt).replace(/^# breakdown: .*\n/m, ''),
  };
}

/** Each (period, campaign, dimension)'s values sum exactly to that row, and no value is without a row. */
function assertValuesSumToRows(rows: readonly string[][], values: readonly string[][], dims: readonly string[]): void {
  const sums = new Map<string, [bigint, bigint]>();
  for (const [period, campaign, dimension, , i, s] of values) {
    const [n, sp] = sums.get(`${period}|${campaign}|${dimension}`) ?? [0n, 0n];
    sums.set(`${period}|${campaign}|${dimension}`, [n + BigInt(i), sp + BigInt(s)]);
  }
  for (const [period, campaign, impressions, spend] of rows) {
    for (const d of dims) {
      assert.deepEqual(sums.get(`${period}|${campaign}|${d}`), [BigInt(impressions), BigInt(spend)], `${period} ${campaign} ${d}: its values sum to the row`);
      sums.delete(`${period}|${campaign}|${d}`);
    }
  }
  assert.deepEqual([...sums.keys()], [], 'no values without a row');
}

/** The values as a map like expectedValues, CSV cells read back to the values they stand for. */
function valuesOf(values: readonly string[][], csv: boolean): Map<string, [number, bigint]> {
  const raw = (v: string) => (csv && v.startsWith("'") && FORMULA_TRIGGER.test(v.slice(1)) ? v.slice(1) : v);
  return new Map(values.map(([period, campaign, dimension, value, i, s]) => [[period, campaign, dimension, raw(value)].join('|'), [Number(i), BigInt(s)] as [number, bigint]]));
}

describe('billing export with a breakdown section (real Kafka + ClickHouse)', function () {
  this.timeout(600_000);
  let sb: Sandbox;
  let pipeline: Pipeline;
  let ch: ClickHouseClient;
  let server: BillingServer;
  /** The current hour when the events were produced: the two before it are final, it is not. */
  let H: number;
  /** Every counted event (copies excluded). */
  const counted: Event[] = [];
  /** What the first events must give (before the last test adds more). */
  let truth: GroundTruth;

  before(async function () {
    this.timeout(600_000);
    sb = await createSandbox('billbreak', {
      TALLY_ALLOWED_LATENESS_MS: '2000', TALLY_DEDUP_HORIZON_MS: '10000', TALLY_OUT_OF_ORDERNESS_MS: '1000', TALLY_IDLE_TIMEOUT_MS: '1000',
      TALLY_DIMENSIONS: DIMS.join(','),
    });
    const { config } = sb;
    pipeline = new Pipeline(sb);
    pipeline.startSink();
    pipeline.startAggregator();
    // A time-of-hour guard, not a wait for an event: the last past hour must be able to close (its
    // end + 12 s) while this hour lasts.
    if (Date.now() % HOUR < 20_000) await sleep(20_000 - (Date.now() % HOUR));
    H = Math.floor(Date.now() / HOUR) * HOUR;
    const raw = [
      ...spreadEvents('bbd-h2-', 300, H - 2 * HOUR + 1_000, H - HOUR - 60_000),
      ...spreadEvents('bbd-h1-', 300, H - HOUR + 1_000, H - 60_000),
      ...spreadEvents('bbd-now-', 200, H, Math.max(H, Date.now() - 5_000)),
    ];
    counted.push(...raw.map(withDimensions));
    // Every 9th again right after itself, through another route: a retry, counted once.
    const copies = counted.filter((_, i) => i % 9 === 0).length;
    await produceEvents(config, counted.flatMap((e, i) => (i % 9 === 0 ? [e, e] : [e])), (i) => ROUTES[i % 3]);
    truth = truthOf(config, 'bbd-', counted, copies);
    await assertExact(pipeline, truth);
    await awaitFinal(config, H);

    ch = createClickHouse(config);
    server = await BillingServer.start(config, ch, {
      'tok-adv1': { tokenId: 't1', name: 'adv1', scopes: ['advertiser:bbd-adv-1'] },
      'tok-admin': { tokenId: 't2', name: 'admin', scopes: ['admin'] },
    });
  });

  after(async function () {
    this.timeout(120_000);
    await server?.close();
    await ch?.close();
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  /** An export as admin, checked: 200 and the HTTP trailer = the file's digest. */
  const exportOf = async (q: Record<string, string>) => {
    const res = await server.get(exportUrl(q), 'tok-admin');
    assert.equal(res.status, 200, res.body.toString());
    const text = res.body.toString('utf8');
    const sha = q.format === 'json' ? (JSON.parse(text) as JsonExport).sha256 : text.slice(text.lastIndexOf('# sha256: ') + 10, -1);
    assert.equal(res.trailers['x-tally-export-sha256'], sha, 'HTTP trailer = file trailer');
    return { res, text, sha };
  };
  const finalCsv = (adv: string, breakdown?: string) => exportOf({
    advertiser_id: adv, from: isoUtc(H - 2 * HOUR), to: isoUtc(H), granularity: 'hour', ...(breakdown === undefined ? {} : { breakdown }),
  });

  it('a final hourly CSV statement: its rows unchanged, each value as produced, each dimension summing to its row exactly', async () => {
    const written: string[] = [];
    for (const adv of ADVERTISERS) {
      const { res, text } = await finalCsv(adv, 'country,device,creative_id');
      assert.equal(res.headers['x-tally-export-status'], 'final');
      assert.match(String(res.headers['content-disposition']), /-hour-by-country-device-creative_id\.csv"$/);
      const st = parseCsvStatement(text);
      assert.equal(st.meta.status, 'final');
      assert.equal(st.meta.breakdown, 'country,device,creative_id');
      const plain = (await finalCsv(adv)).text;
      assert.equal(st.withoutBreakdown, plain.slice(0, plain.lastIndexOf('# sha256: ')), 'the statement without its breakdown, byte for byte');
      assert.deepEqual(st.rows.map((r) => r.slice(0, 4)), expectedRows(truth, adv, H - 2 * HOUR, H, HOUR));
      assertValuesSumToRows(st.rows, st.values, ['country', 'device', 'creative_id']);
      assert.deepEqual(valuesOf(st.values, true), expectedValues(counted, adv, H - 2 * HOUR, H, HOUR, ['country', 'device', 'creative_id']));
      for (const v of st.values) assert.equal(v[7], 'final');
      written.push(...st.values.map((v) => v[3]));
    }
    // What a spreadsheet sees: no cell starts a formula (=1+2 is written '=1+2), a quoted comma stays one cell.
    for (const v of ["'=1+2", 'a,"b"\\c', 'unknown', 'Österreich']) assert.ok(written.includes(v), v);
  });

  it('a dimension counted since, not when the hours were: their impressions are unknown, summing to the rows all the same', async () => {
    // The API of a deployment that has counted publisher_id since: the stored windows have no values for it.
    const since = await BillingServer.start({ ...sb.config, dimensions: [...DIMS, 'publisher_id'] }, ch, { 'tok-admin': { tokenId: 't2', name: 'admin', scopes: ['admin'] } });
    try {
      const res = await since.get(exportUrl({ advertiser_id: 'bbd-adv-2', from: isoUtc(H - 2 * HOUR), to: isoUtc(H), granularity: 'hour', breakdown: 'publisher_id,country' }), 'tok-admin');
      assert.equal(res.status, 200, res.body.toString());
      const st = parseCsvStatement(res.body.toString('utf8'));
      assertValuesSumToRows(st.rows, st.values, ['publisher_id', 'country']);
      const publisher = st.values.filter((v) => v[2] === 'publisher_id');
      assert.deepEqual(publisher.map((v) => [v[0], v[1], v[3], v[4], v[5]]), st.rows.map((r) => [r[0], r[1], 'unknown', r[2], r[3]]));
      assert.deepEqual(valuesOf(st.values.filter((v) => v[2] === 'country'), true), expectedValues(counted, 'bbd-adv-2', H - 2 * HOUR, H, HOUR, ['country']));
    } finally {
      await since.close();
    }
  });

  it('a daily JSON statement reaching into the open hour: "breakdowns" by day, campaign and dimension, in order, summing to the rows, in the digest', async () => {
    const dayFrom = Math.floor((H - 2 * HOUR) / DAY) * DAY;
    const dayTo = Math.floor(H / DAY) * DAY + DAY;
    const dims = ['device', 'country'];
    const res = await server.get(exportUrl({ advertiser_id: 'bbd-adv-1', from: isoUtc(dayFrom).slice(0, 10), to: isoUtc(dayTo).slice(0, 10), format: 'json', breakdown: dims.join(',') }), 'tok-adv1');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.headers['x-tally-export-status'], 'provisional');
    const doc = JSON.parse(res.body.toString('utf8')) as JsonExport;
    assert.deepEqual(doc.breakdown, dims);
    const rows = doc.rows.map((r) => [r.period_start, r.campaign_id, r.impressions, r.spend_micros]);
    assert.deepEqual(rows, expectedRows(truth, 'bbd-adv-1', dayFrom, dayTo, DAY));
    const values = (doc.breakdowns ?? []).map((b) => [b.period_start, b.campaign_id, b.dimension, b.value, b.impressions, b.spend_micros, b.spend, b.maturity]);
    assertValuesSumToRows(rows, values, dims);
    assert.deepEqual(valuesOf(values, false), expectedValues(counted, 'bbd-adv-1', dayFrom, dayTo, DAY, ['device', 'country']));
    assert.ok(values.some((v) => v[3] === '=1+2'), 'JSON carries values as they are');
    for (const b of doc.breakdowns ?? []) assert.equal(b.maturity, doc.rows.find((r) => r.period_start === b.period_start && r.campaign_id === b.campaign_id)?.maturity);
    const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    const order = [...values].sort((a, b) => cmp(a[0], b[0]) || cmp(a[1], b[1]) || dims.indexOf(a[2]) - dims.indexOf(b[2])
      || Number(b[4]) - Number(a[4]) || Buffer.compare(Buffer.from(a[3]), Buffer.from(b[3])));
    assert.deepEqual(values, order, 'by period, campaign, dimension as asked, then most impressions first, then value');
    const header = {
      status: doc.status, advertiser_id: doc.advertiser_id, from: doc.from, to: doc.to, granularity: doc.granularity, breakdown: doc.breakdown,
      late_unbillable: doc.late_unbillable, lineage: doc.lineage,
    };
    const canonical = [header, ...doc.rows, doc.totals, ...(doc.breakdowns ?? [])].map((o) => `${JSON.stringify(o)}\n`).join('');
    assert.equal(doc.sha256, crypto.createHash('sha256').update(canonical).digest('hex'));
  });

  it('a final statement with a breakdown is byte-identical after more data for the open hour and too-late data for its own; the CLI writes the same bytes', async () => {
    const { config } = sb;
    const before = await Promise.all([finalCsv('bbd-adv-1', 'country,device'), exportOf({
      advertiser_id: 'bbd-adv-1', from: isoUtc(H - 2 * HOUR), to: isoUtc(H), granularity: 'hour', format: 'json', breakdown: 'creative_id',
    })]);
    const more = spreadEvents('bbd-more-', 120, Math.max(H, Date.now() - 3_000), Date.now()).map((e, i) => withDimensions(e, i + 1));
    const tooLate = spreadEvents('bbd-late-', 6, H - HOUR + 5_000, H - HOUR + 9_000).map((e, i) => withDimensions(e, i));
    await produceEvents(config, [...more, ...tooLate], (i) => ROUTES[i % 3]);
    counted.push(...more);
    // Landed: the open hour's statement holds them, values included.
    const openHour = { advertiser_id: 'bbd-adv-1', from: isoUtc(H), to: isoUtc(H + HOUR), granularity: 'hour', breakdown: 'country,device' };
    const want = expectedValues(counted, 'bbd-adv-1', H, H + HOUR, HOUR, ['country', 'device']);
    await eventually('the later data counted and broken down', async () => {
      assert.deepEqual(valuesOf(parseCsvStatement((await exportOf(openHour)).text).values, true), want);
      return true;
    }, 120_000);
    await eventually('the too-late events dead-lettered', async () => {
      const rows = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${config.clickhouse.database}.dead_letters FINAL WHERE reason = 'too_late'`);
      return Number(rows[0].n) === tooLate.length;
    }, 60_000);
    const open = parseCsvStatement((await exportOf(openHour)).text);
    assert.equal(open.meta.status, 'provisional');
    assertValuesSumToRows(open.rows, open.values, ['country', 'device']);

    const after = await Promise.all([finalCsv('bbd-adv-1', 'country,device'), exportOf({
      advertiser_id: 'bbd-adv-1', from: isoUtc(H - 2 * HOUR), to: isoUtc(H), granularity: 'hour', format: 'json', breakdown: 'creative_id',
    })]);
    for (const [i, b] of before.entries()) {
      assert.ok(after[i].res.body.equals(b.res.body), `${i === 0 ? 'CSV' : 'JSON'}: byte-identical after later data`);
      assert.equal(after[i].sha, b.sha);
    }
    const out = path.join(os.tmpdir(), `tally-billing-${crypto.randomBytes(4).toString('hex')}.csv`);
    const cli = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/cli.ts'), 'billing', 'export', '--advertiser', 'bbd-adv-1',
      '--from', isoUtc(H - 2 * HOUR), '--to', isoUtc(H), '--granularity', 'hour', '--breakdown', 'country,device', '--out', out], { cwd: repoRoot, env: sb.env, encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stderr, /breakdown rows\)/);
    assert.ok(fs.readFileSync(out).equals(before[0].res.body), 'CLI output = HTTP output');
    fs.rmSync(out);
  });

  it('a breakdown by a dimension not counted here, not one, or named twice: 400 naming breakdown, a clear CLI error; --help documents it', async () => {
    const ok = { advertiser_id: 'bbd-adv-1', from: isoUtc(H - 2 * HOUR), to: isoUtc(H), granularity: 'hour' };
    for (const breakdown of ['publisher_id', 'nope', 'country,country', "country' OR 1=1 --", '', 'country;device']) {
      const r = await server.get(exportUrl({ ...ok, breakdown }), 'tok-adv1');
      assert.equal(r.status, 400, `${breakdown}: ${r.body.toString()}`);
      assert.equal((JSON.parse(r.body.toString()) as { error: { parameter?: string } }).error.parameter, 'breakdown', breakdown);
    }
    assert.equal((await server.get(`${exportUrl(ok)}&breakdown=country&breakdown=device`, 'tok-adv1')).status, 400);
    assert.equal((await server.get(exportUrl({ ...ok, advertiser_id: 'bbd-adv-2', breakdown: 'country' }), 'tok-adv1')).status, 403);
    const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/cli.ts'), 'billing', 'export', ...args], { cwd: repoRoot, env: sb.env, encoding: 'utf8' });
    const bad = cli(['--advertiser', 'bbd-adv-1', '--from', isoUtc(H - 2 * HOUR), '--to', isoUtc(H), '--granularity', 'hour', '--breakdown', 'publisher_id']);
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stderr, /--breakdown: names publisher_id, which is not counted here; choose from creative_id, country, device \(TALLY_DIMENSIONS\)/);
    const help = cli(['--help']);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /--breakdown <dimensions>/);
    assert.match(help.stdout, /# section: breakdowns/);
  });
});
