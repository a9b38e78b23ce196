/**
 * Billing exports on the real stack: the whole pipeline (aggregator + `tally sink`, which also
 * runs the dead-letter sink) fed by the generator, then exports over HTTP (the billing router in a
 * small express app behind the API's auth middleware with a fake token verifier) and the CLI,
 * compared row by row with the ground truth. Plus a month of hourly rows × 1000 campaigns,
 * streamed with bounded memory.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import express, { type ErrorRequestHandler } from 'express';
import { ApiError, ApiMetrics } from '../../server/src/api/index.js';
import { authenticate, requireAuthenticated } from '../../server/src/api/auth-middleware.js';
import { sendError } from '../../server/src/api/http-errors.js';
import type { Principal, TokenVerifier } from '../../server/src/auth/index.js';
import { billingRouter, formatMicros, isoUtc, queryPeriodStatus } from '../../server/src/billing/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { repoRoot, type TallyConfig } from '../../server/src/config/index.js';
import { createLogger } from '../../server/src/observability/index.js';
import { buildEventPlan, planContext, producePlan, truthTotals, type GroundTruth } from '../../server/src/tools/index.js';
import { createSandbox, eventually, type Sandbox } from './harness.js';
import { assertExact, Pipeline } from './pipeline.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;

interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
}

class BillingServer {
  private constructor(readonly server: http.Server, readonly base: string) {}

  static async start(config: TallyConfig, ch: ClickHouseClient, principals: Record<string, Principal>): Promise<BillingServer> {
    const verifier: TokenVerifier = { verify: (token) => Promise.resolve(principals[token]) };
    const log = createLogger('billing-test', 'warn');
    const app = express();
    app.set('query parser', 'simple');
    app.use('/api/v1', authenticate(verifier), requireAuthenticated(new ApiMetrics()), billingRouter({ config, clickhouse: ch, log }));
    const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
      if (err instanceof ApiError) return sendError(res, err);
      log.error({ err }, 'test.internal_error');
      res.status(500).json({ error: { status: 500, message: 'internal server error' } });
    };
    app.use(onError);
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new BillingServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  }

  /** GET with the body consumed by `onChunk` (default: kept). */
  get(pathAndQuery: string, token?: string, onChunk?: (b: Buffer) => void): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${this.base}${pathAndQuery}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => (onChunk ? onChunk(c) : chunks.push(c)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function exportUrl(q: Record<string, string>): string {
  return `/api/v1/billing/export?${new URLSearchParams(q).toString()}`;
}

interface ParsedCsv {
  meta: Record<string, string>;
  rows: string[][];
  total: string[];
  sha256: string;
}

function parseCsv(text: string): ParsedCsv {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  const meta: Record<string, string> = {};
  const data: string[][] = [];
  let sha256 = '';
  for (const [i, line] of lines.entries()) {
    if (line.startsWith('# sha256: ')) {
      assert.equal(i, lines.length - 1, 'sha256 is the last line');
      sha256 = line.slice('# sha256: '.length);
    } else if (line.startsWith('# ')) {
      const m = /^# ([a-z_]+): (.*)$/.exec(line);
      if (m) meta[m[1]] = m[2];
    } else {
      data.push(line.split(','));
    }
  }
  assert.deepEqual(data[0], ['period_start', 'advertiser_id', 'campaign_id', 'impressions', 'spend_micros', 'spend', 'duplicates_removed']);
  const total = data[data.length - 1];
  assert.equal(total[0], 'total');
  const digest = crypto.createHash('sha256').update(text.slice(0, text.lastIndexOf('# sha256: '))).digest('hex');
  assert.equal(sha256, digest, 'the trailer is the sha256 of everything before it');
  return { meta, rows: data.slice(1, -1), total, sha256 };
}

/** The truth aggregated like an export: [period_start, campaign, impressions, spend_micros] in output order. */
function expectedRows(truth: GroundTruth, advertiserId: string, from: number, to: number, periodMs: number): string[][] {
  const acc = new Map<string, { period: number; campaign: string; impressions: bigint; spend: bigint }>();
  for (const r of truth.rows) {
    if (r.advertiserId !== advertiserId || r.windowStart < from || r.windowStart >= to) continue;
    const period = Math.floor(r.windowStart / periodMs) * periodMs;
    const key = `${String(period).padStart(16, '0')}|${r.campaignId}`;
    const a = acc.get(key) ?? { period, campaign: r.campaignId, impressions: 0n, spend: 0n };
    a.impressions += BigInt(r.impressions);
    a.spend += BigInt(r.spendMicros);
    acc.set(key, a);
  }
  return [...acc.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, a]) => [isoUtc(a.period), a.campaign, a.impressions.toString(), a.spend.toString()]);
}

describe('billing export (real Kafka + ClickHouse)', function () {
  this.timeout(600_000);
  let sb: Sandbox | undefined;
  let pipeline: Pipeline | undefined;
  let ch: ClickHouseClient | undefined;
  let server: BillingServer | undefined;

  afterEach(async function () {
    this.timeout(120_000);
    await server?.close();
    await ch?.close();
    await pipeline?.stopAll();
    await sb?.cleanup();
    server = undefined;
    ch = undefined;
    pipeline = undefined;
    sb = undefined;
  });

  it('exports exactly the ground truth (rows, totals, too_late), final vs provisional, byte-identical repeats, 400/401/403', async () => {
    sb = await createSandbox('billing');
    const { config } = sb;
    pipeline = new Pipeline(sb);
    pipeline.startSink();
    pipeline.startAggregator();
    const ctx = planContext(config, Date.now());
    const plan = buildEventPlan({ seed: 4242, count: 6_000, idPrefix: 'bill-', advertisers: 2, campaigns: 3, tooLate: 9, lateWithinHorizon: 30, bad: 18 }, ctx);
    await producePlan(config, plan);
    const truth = plan.truth;
    await assertExact(pipeline, truth);

    ch = createClickHouse(config);
    const db = config.clickhouse.database;
    const client = ch;
    // The dead-letter sink (started by `tally sink`) has every DLQ record, once, with its reason.
    const expectedDlq = Object.entries(truth.deadLetters).filter(([, n]) => n > 0).sort(([a], [b]) => (a < b ? -1 : 1));
    await eventually('dead letters in ClickHouse', async () => {
      const rows = await queryRows<{ reason: string; n: string }>(client, `SELECT reason, count() AS n FROM ${db}.dead_letters FINAL GROUP BY reason ORDER BY reason`);
      return JSON.stringify(rows.map((r) => [r.reason, Number(r.n)])) === JSON.stringify(expectedDlq);
    }, 60_000);

    const tooLate = plan.records.filter((r) => r.kind === 'too_late').map((r) => JSON.parse(r.value) as { advertiser_id: string; ts: number });
    assert.equal(tooLate.length, 9);
    const expectedTooLate = (adv: string, from: number, to: number) => tooLate.filter((e) => e.advertiser_id === adv && e.ts >= from && e.ts < to).length;

    // Past hours become final once every partition's watermark passed their end + allowed lateness (idle partitions advance by the clock).
    const H = Math.floor(Date.now() / HOUR) * HOUR;
    await eventually('watermarks past the current hour start', async () => (await queryPeriodStatus(client, config, H)).status === 'final', 120_000);
    const pastFrom = H - 5 * HOUR;
    for (const r of truth.rows) assert.ok(r.windowStart >= pastFrom && r.windowStart < H + HOUR, 'every truth row falls in the two exported periods');
    for (const e of tooLate) assert.ok(e.ts >= pastFrom && e.ts < H, 'too_late events are in the past period');

    const advertisers = ['bill-adv-1', 'bill-adv-2'];
    server = await BillingServer.start(config, ch, {
      'tok-adv1': { tokenId: 't1', name: 'adv1', scopes: ['advertiser:bill-adv-1'] },
      'tok-admin': { tokenId: 't2', name: 'admin', scopes: ['admin'] },
      'tok-ingest': { tokenId: 't3', name: 'ingest', scopes: ['ingest'] },
    });

    let impressions = 0n;
    let spend = 0n;
    let duplicates = 0n;
    let tooLateSeen = 0;
    for (const adv of advertisers) {
      for (const [from, to, status] of [[pastFrom, H, 'final'], [H, H + HOUR, 'provisional']] as const) {
        const q = { advertiser_id: adv, from: isoUtc(from), to: String(to), granularity: 'hour', format: 'csv' };
        const res = await server.get(exportUrl(q), 'tok-admin');
        assert.equal(res.status, 200, res.body.toString());
        assert.equal(res.headers['content-type'], 'text/csv; charset=utf-8');
        assert.equal(res.headers['x-tally-export-status'], status);
        const csv = parseCsv(res.body.toString('utf8'));
        assert.equal(res.trailers['x-tally-export-sha256'], csv.sha256, 'HTTP trailer = file trailer');
        assert.equal(csv.meta.status, status);
        assert.equal(csv.meta.advertiser, adv);
        assert.equal(csv.meta.period, `${isoUtc(from)}/${isoUtc(to)}`);
        assert.equal(Number(csv.meta.too_late_events), expectedTooLate(adv, from, to), 'too_late_events');
        tooLateSeen += Number(csv.meta.too_late_events);
        assert.equal(csv.meta.generated_at === undefined, status === 'final', 'only provisional files carry a generation time');
        // Every row exactly as the truth; spend is the micros in currency units.
        assert.deepEqual(csv.rows.map((r) => [r[0], r[2], r[3], r[4]]), expectedRows(truth, adv, from, to, HOUR), `${adv} ${status}`);
        for (const r of csv.rows) {
          assert.equal(r[1], adv);
          assert.equal(r[5], formatMicros(BigInt(r[4])));
        }
        // Totals reconcile with the rows.
        const sum = (i: number) => csv.rows.reduce((s, r) => s + BigInt(r[i]), 0n);
        assert.deepEqual(csv.total, ['total', adv, '', sum(3).toString(), sum(4).toString(), formatMicros(sum(4)), sum(6).toString()]);
        impressions += sum(3);
        spend += sum(4);
        duplicates += sum(6);

        if (status === 'final') {
          const again = await server.get(exportUrl(q), 'tok-admin');
          assert.ok(again.body.equals(res.body), 'a final export is byte-identical on repeat');
          assert.equal(again.trailers['x-tally-export-sha256'], csv.sha256);
          // The CLI writes the same bytes.
          const out = path.join(os.tmpdir(), `tally-billing-${crypto.randomBytes(4).toString('hex')}.csv`);
          const cli: SpawnSyncReturns<string> = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/cli.ts'), 'billing', 'export',
            '--advertiser', adv, '--from', isoUtc(from), '--to', isoUtc(to), '--granularity', 'hour', '--out', out], { cwd: repoRoot, env: sb.env, encoding: 'utf8' });
          assert.equal(cli.status, 0, cli.stderr);
          assert.match(cli.stderr, /rows written/);
          assert.ok(fs.readFileSync(out).equals(res.body), 'CLI output = HTTP output');
          fs.rmSync(out);
        }
      }
    }
    const totals = truthTotals(truth);
    assert.equal(impressions, totals.impressions, 'all exports together: every impression of the truth');
    assert.equal(spend, totals.spendMicros, 'all exports together: every micro of the truth');
    assert.equal(duplicates, BigInt(truth.counts.duplicatesSent), 'duplicates removed');
    assert.equal(tooLateSeen, truth.deadLetters.too_late, 'every too_late event in some export');

    // JSON, daily: rows, totals and the canonical digest.
    const dayFrom = Math.floor(pastFrom / DAY) * DAY;
    const dayTo = Math.floor(H / DAY) * DAY + DAY;
    const jres = await server.get(exportUrl({ advertiser_id: 'bill-adv-1', from: isoUtc(dayFrom).slice(0, 10), to: isoUtc(dayTo).slice(0, 10), format: 'json' }), 'tok-adv1');
    assert.equal(jres.status, 200, jres.body.toString());
    assert.equal(jres.headers['x-tally-export-status'], 'provisional');
    type JsonRow = { period_start: string; campaign_id: string; impressions: string; spend_micros: string; spend: string };
    const doc = JSON.parse(jres.body.toString('utf8')) as Record<string, string> & { rows: JsonRow[]; totals: Record<string, string> };
    assert.equal(doc.status, 'provisional');
    assert.equal(Number(doc.too_late_events), expectedTooLate('bill-adv-1', dayFrom, dayTo));
    assert.deepEqual(doc.rows.map((r) => [r.period_start, r.campaign_id, r.impressions, r.spend_micros]), expectedRows(truth, 'bill-adv-1', dayFrom, dayTo, DAY));
    assert.equal(doc.totals.impressions, doc.rows.reduce((s, r) => s + BigInt(r.impressions), 0n).toString());
    assert.equal(doc.totals.spend_micros, doc.rows.reduce((s, r) => s + BigInt(r.spend_micros), 0n).toString());
    const header = { status: doc.status, advertiser_id: doc.advertiser_id, from: doc.from, to: doc.to, granularity: doc.granularity, too_late_events: doc.too_late_events };
    const canonical = [header, ...doc.rows, doc.totals].map((o) => `${JSON.stringify(o)}\n`).join('');
    assert.equal(doc.sha256, crypto.createHash('sha256').update(canonical).digest('hex'));
    assert.equal(jres.trailers['x-tally-export-sha256'], doc.sha256);

    // Access: another advertiser → 403; no or a bad token → 401; an ingest token reads nothing.
    const ok = { advertiser_id: 'bill-adv-2', from: isoUtc(pastFrom), to: isoUtc(H), granularity: 'hour' };
    assert.equal((await server.get(exportUrl(ok), 'tok-adv1')).status, 403);
    assert.equal((await server.get(exportUrl(ok), 'tok-ingest')).status, 403);
    assert.equal((await server.get(exportUrl(ok))).status, 401);
    assert.equal((await server.get(exportUrl(ok), 'nope')).status, 401);

    // Bad and injection-shaped input → 400 naming the parameter, never 500, nothing reaches SQL.
    const bad: Array<[string, string]> = [
      [`advertiser_id=${encodeURIComponent("bill-adv-1' OR 1=1 --")}&from=2025-01-01&to=2025-01-02`, 'advertiser_id'],
      [`advertiser_id=${encodeURIComponent("x'); DROP TABLE impression_counts; --")}&from=2025-01-01&to=2025-01-02`, 'advertiser_id'],
      ['advertiser_id=bill-adv-1&advertiser_id=bill-adv-2&from=2025-01-01&to=2025-01-02', 'advertiser_id'],
      [`advertiser_id=bill-adv-1&from=${encodeURIComponent("2025-01-01'")}&to=2025-01-02`, 'from'],
      [`advertiser_id=bill-adv-1&from=${encodeURIComponent('toDateTime(0)')}&to=2025-01-02`, 'from'],
      ['advertiser_id=bill-adv-1&from=2025-01-01T10:30:00Z&to=2025-01-02&granularity=hour', 'from'],
      ['advertiser_id=bill-adv-1&from=2025-01-02&to=2025-01-01', 'from'],
      ['advertiser_id=bill-adv-1&from=2025-01-01&to=2025-06-01', 'to'],
      [`advertiser_id=bill-adv-1&from=2025-01-01&to=2025-01-02&granularity=${encodeURIComponent('hour; DROP')}`, 'granularity'],
      [`advertiser_id=bill-adv-1&from=2025-01-01&to=2025-01-02&format=${encodeURIComponent("csv'")}`, 'format'],
      ['from=2025-01-01&to=2025-01-02', 'advertiser_id'],
    ];
    for (const [query, parameter] of bad) {
      const r = await server.get(`/api/v1/billing/export?${query}`, 'tok-adv1');
      assert.equal(r.status, 400, `${query}: ${r.body.toString()}`);
      assert.equal((JSON.parse(r.body.toString()) as { error: { parameter?: string } }).error.parameter, parameter, query);
    }
    const still = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${db}.impression_counts`);
    assert.ok(Number(still[0].n) > 0, 'the table is still there');
  });

  it('streams a month of hourly rows × 1000 campaigns (720k rows) with bounded memory', async () => {
    sb = await createSandbox('billbig');
    const { config } = sb;
    ch = createClickHouse(config, { requestTimeoutMs: 60_000 });
    const db = config.clickhouse.database;
    const from = Date.UTC(2025, 0, 1);
    const to = from + 30 * DAY;
    const base = from / 1000;
    await ch.command({
      query: `INSERT INTO ${db}.impression_counts (window_start, window_end, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, version, final, revised) `
        + `SELECT toDateTime(${base} + intDiv(number, 1000) * 3600), toDateTime(${base} + intDiv(number, 1000) * 3600 + 60), 'big-adv', `
        + "concat('cmp-', toString(number % 1000)), toUInt16(number % 8), toUInt64(number % 1000 + 1), toUInt64((number * 7919) % 5000000), "
        + 'toUInt64(number % 3), toUInt64(1), 1, 0 FROM system.numbers LIMIT 720000',
    });
    const wm = to + HOUR;
    await ch.command({
      query: `INSERT INTO ${db}.partition_watermarks (source_partition, watermark_ms, max_event_time_ms, updated_at, version) VALUES `
        + Array.from({ length: config.partitions }, (_, p) => `(${p}, ${wm}, ${wm}, ${Math.floor(Date.now() / 1000)}, ${wm})`).join(', '),
    });
    const [expected] = await queryRows<{ i: string; s: string; d: string }>(ch,
      `SELECT sum(impressions) AS i, sum(spend_micros) AS s, sum(duplicates) AS d FROM ${db}.impression_counts FINAL WHERE advertiser_id = 'big-adv'`);
    const big = await BillingServer.start(config, ch, { admin: { tokenId: 'a', name: 'admin', scopes: ['admin'] } });
    server = big;

    const run = async () => {
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      let peak = rss0;
      const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      let lines = 0;
      let tail = '';
      const t0 = Date.now();
      const res = await big.get(exportUrl({ advertiser_id: 'big-adv', from: isoUtc(from), to: isoUtc(to), granularity: 'hour' }), 'admin', (c) => {
        hash.update(c);
        bytes += c.length;
        for (let i = 0; i < c.length; i++) if (c[i] === 10) lines++;
        tail = (tail + c.toString('latin1')).slice(-400);
      });
      const ms = Date.now() - t0;
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return { res, ms, bytes, lines, tail, digest: hash.digest('hex'), rssDeltaMb: (peak - rss0) / 2 ** 20 };
    };
    const a = await run();
    assert.equal(a.res.status, 200);
    assert.equal(a.res.headers['x-tally-export-status'], 'final');
    // 6 comment lines + header + 720 000 rows + total + sha256
    assert.equal(a.lines, 6 + 1 + 720_000 + 1 + 1);
    const totalLine = a.tail.split('\n').at(-3) as string;
    assert.equal(totalLine, `total,big-adv,,${expected.i},${expected.s},${formatMicros(BigInt(expected.s))},${expected.d}`);
    const b = await run();
    assert.equal(b.digest, a.digest, 'byte-identical on repeat');
    assert.equal(b.res.trailers['x-tally-export-sha256'], a.res.trailers['x-tally-export-sha256']);
    process.stderr.write(`      [billing] 720k rows, ${(a.bytes / 2 ** 20).toFixed(1)} MiB CSV: ${a.ms} ms / ${b.ms} ms, peak RSS delta ${a.rssDeltaMb.toFixed(1)} / ${b.rssDeltaMb.toFixed(1)} MiB (server + client in this process)\n`);
    assert.ok(Math.min(a.rssDeltaMb, b.rssDeltaMb) < 100, `peak RSS grew by ${a.rssDeltaMb.toFixed(1)} / ${b.rssDeltaMb.toFixed(1)} MiB`);
  });
});
