/**
 * Billing exports on the real stack: the whole pipeline (aggregator + `tally sink`, which also
 * runs the dead-letter sink) fed with impressions across past hours, then exports over HTTP (the
 * billing router in a small express app behind the API's auth middleware with a fake token
 * verifier) and the CLI, compared row by row with what was produced: final statements from the
 * ledger, byte-identical whatever arrives later, late events reported where they arrived. Plus a
 * month of hourly ledger rows × 1000 campaigns, streamed with bounded memory.
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
import type { BillingPeriodsResponse } from '../../server/src/contracts/api-types.js';
import { ApiMetrics } from '../../server/src/api/index.js';
import { authenticate, requireAuthenticated } from '../../server/src/api/auth-middleware.js';
import { ApiError, sendError } from '../../server/src/http/index.js';
import { AuthFailureLimiter, type Principal, type TokenVerifier } from '../../server/src/auth/index.js';
import { billingRouter, formatMicros, isoUtc } from '../../server/src/billing/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { repoRoot, type TallyConfig } from '../../server/src/config/index.js';
import { createLogger } from '../../server/src/observability/index.js';
import { truthTotals, type GroundTruth } from '../../server/src/tools/index.js';
import { spreadEvents, produceEvents, truthOf, type HandEvent } from '../kit/hand-events.js';
import { createSandbox, eventually, sleep, type Sandbox } from '../kit/harness.js';
import { assertExact, awaitFinal, Pipeline } from '../kit/pipeline.js';

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
    app.use('/api/v1', authenticate(verifier, new AuthFailureLimiter(10_000)), requireAuthenticated(new ApiMetrics()), billingRouter({ config, clickhouse: ch, log }));
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
  /** Comment lines by key; repeated keys (late_unbillable_from, lineage) in `lists`. */
  meta: Record<string, string>;
  lists: Record<string, string[]>;
  rows: string[][];
  total: string[];
  sha256: string;
}

function parseCsv(text: string): ParsedCsv {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  const meta: Record<string, string> = {};
  const lists: Record<string, string[]> = {};
  const data: string[][] = [];
  let sha256 = '';
  for (const [i, line] of lines.entries()) {
    if (line.startsWith('# sha256: ')) {
      assert.equal(i, lines.length - 1, 'sha256 is the last line');
      sha256 = line.slice('# sha256: '.length);
    } else if (line.startsWith('# ')) {
      const m = /^# ([a-z_]+): (.*)$/.exec(line);
      if (m) {
        meta[m[1]] = m[2];
        (lists[m[1]] ??= []).push(m[2]);
      }
    } else {
      data.push(line.split(','));
    }
  }
  assert.deepEqual(data[0], ['period_start', 'advertiser_id', 'campaign_id', 'impressions', 'spend_micros', 'spend', 'duplicates_removed', 'maturity']);
  const total = data[data.length - 1];
  assert.equal(total[0], 'total');
  const digest = crypto.createHash('sha256').update(text.slice(0, text.lastIndexOf('# sha256: '))).digest('hex');
  assert.equal(sha256, digest, 'the trailer is the sha256 of everything before it');
  return { meta, lists, rows: data.slice(1, -1), total, sha256 };
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

  it('final statements from the ledger: exactly what was produced, byte-identical whatever arrives later; late events where they arrived; 400/401/403', async () => {
    // Hours close once the watermark passes their end + lateness + horizon: 2 s + 10 s here.
    sb = await createSandbox('billing', { TALLY_ALLOWED_LATENESS_MS: '2000', TALLY_DEDUP_HORIZON_MS: '10000', TALLY_OUT_OF_ORDERNESS_MS: '1000', TALLY_IDLE_TIMEOUT_MS: '1000' });
    const { config } = sb;
    pipeline = new Pipeline(sb);
    pipeline.startSink();
    pipeline.startAggregator();
    // Three past hours and the current one, 2 advertisers × 2 campaigns, copies, every route.
    if (Date.now() % HOUR < 20_000) await sleep(20_000 - (Date.now() % HOUR)); // the last hour must be able to close
    const H = Math.floor(Date.now() / HOUR) * HOUR;
    const events: HandEvent[] = [];
    for (let h = 3; h >= 1; h--) events.push(...spreadEvents(`bill-h${h}-`, 400, H - h * HOUR + 1_000, H - (h - 1) * HOUR - 60_000));
    const current = spreadEvents('bill-now-', 300, Date.now() - 5_000, Date.now());
    events.push(...current);
    const byAdv = (e: HandEvent) => ({ ...e, advertiser_id: e.advertiser_id.replace(/^bill-[a-z0-9]+-/, 'bill-'), campaign_id: e.campaign_id.replace(/^bill-[a-z0-9]+-/, 'bill-') });
    const all = events.map(byAdv);
    const copies = all.filter((_, i) => i % 9 === 0);
    const routes = ['home', 'foreign', 'nokey'] as const;
    // Each copy right after its original (a retry), through another route.
    await produceEvents(config, all.flatMap((e, i) => (i % 9 === 0 ? [e, e] : [e])), (i) => routes[i % 3]);
    const truth = truthOf(config, 'bill-', all, copies.length);
    await assertExact(pipeline, truth);
    await awaitFinal(config, H);

    ch = createClickHouse(config);
    const client = ch;
    server = await BillingServer.start(config, ch, {
      'tok-adv1': { tokenId: 't1', name: 'adv1', scopes: ['advertiser:bill-adv-1'] },
      'tok-admin': { tokenId: 't2', name: 'admin', scopes: ['admin'] },
      'tok-ingest': { tokenId: 't3', name: 'ingest', scopes: ['ingest'] },
    });
    const past = { from: H - 3 * HOUR, to: H };
    const exportCsv = async (adv: string, from: number, to: number) => {
      const res = await server!.get(exportUrl({ advertiser_id: adv, from: isoUtc(from), to: String(to), granularity: 'hour', format: 'csv' }), 'tok-admin');
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.headers['content-type'], 'text/csv; charset=utf-8');
      const csv = parseCsv(res.body.toString('utf8'));
      assert.equal(res.trailers['x-tally-export-sha256'], csv.sha256, 'HTTP trailer = file trailer');
      return { res, csv };
    };

    const finals = new Map<string, Buffer>();
    let finalAt: string | undefined;
    let impressions = 0n;
    let spend = 0n;
    let duplicates = 0n;
    for (const adv of ['bill-adv-1', 'bill-adv-2']) {
      for (const [from, to, status] of [[past.from, past.to, 'final'], [H, H + HOUR, 'provisional']] as const) {
        const { res, csv } = await exportCsv(adv, from, to);
        assert.equal(res.headers['x-tally-export-status'], status);
        assert.equal(csv.meta.status, status);
        assert.equal(csv.meta.advertiser, adv);
        assert.equal(csv.meta.period, `${isoUtc(from)}/${isoUtc(to)}`);
        assert.equal(csv.meta.generated_at === undefined, status === 'final', 'only provisional files carry a generation time');
        assert.equal(csv.meta.final_at !== undefined, status === 'final', 'a final file says when it became final');
        // Every row exactly as produced; spend is the micros in currency units; maturity per row.
        assert.deepEqual(csv.rows.map((r) => [r[0], r[2], r[3], r[4]]), expectedRows(truth, adv, from, to, HOUR), `${adv} ${status}`);
        for (const r of csv.rows) {
          assert.equal(r[1], adv);
          assert.equal(r[5], formatMicros(BigInt(r[4])));
          assert.equal(r[7], status === 'final' ? 'final' : 'live');
        }
        const sum = (i: number) => csv.rows.reduce((a, r) => a + BigInt(r[i]), 0n);
        assert.deepEqual(csv.total, ['total', adv, '', sum(3).toString(), sum(4).toString(), formatMicros(sum(4)), sum(6).toString(), status === 'final' ? 'final' : 'live']);
        impressions += sum(3);
        spend += sum(4);
        duplicates += sum(6);
        if (status === 'final') {
          finalAt = csv.meta.final_at;
          // The Kafka offsets the numbers came from: both inputs of every partition.
          assert.equal(csv.lists.lineage?.length, config.partitions, csv.lists.lineage?.join('\n'));
          for (const l of csv.lists.lineage ?? []) assert.match(l, /^\S+impressions\/\d+ \[(\d+|none), \d+\) \S+aggregator-repartition\/\d+ \[(\d+|none), \d+\)$/);
          finals.set(adv, res.body);
          const again = await exportCsv(adv, from, to);
          assert.ok(again.res.body.equals(res.body), 'a final export is byte-identical on repeat');
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
    assert.equal(impressions, totals.impressions, 'all exports together: every impression produced');
    assert.equal(spend, totals.spendMicros, 'all exports together: every micro');
    assert.equal(duplicates, BigInt(copies.length), 'duplicates removed');

    // Finality per hour, as the billing page shows it: the past hours final since their closes (the
    // statement's final_at is its last hour's), the current one not yet, with an expected time.
    const pres = await server.get(`/api/v1/billing/periods?from=${isoUtc(past.from)}&to=${isoUtc(H + HOUR)}`, 'tok-adv1');
    assert.equal(pres.status, 200, pres.body.toString());
    const timeline = JSON.parse(pres.body.toString()) as BillingPeriodsResponse;
    assert.deepEqual(timeline.periods.map((p) => [p.periodStart, p.maturity, p.closedPartitions]),
      [[H - 3 * HOUR, 'final', config.partitions], [H - 2 * HOUR, 'final', config.partitions], [H - HOUR, 'final', config.partitions], [H, 'live', timeline.periods[3].closedPartitions]]);
    assert.ok(timeline.periods[3].closedPartitions < config.partitions);
    assert.equal(new Date(timeline.periods[2].finalAt ?? 0).toISOString(), finalAt, 'the statement\'s final_at');
    assert.ok(timeline.periods.slice(0, 3).every((p) => p.finalAt !== null && p.finalAt <= Date.now() && p.expectedFinalAt === null));
    assert.equal(timeline.periods[3].finalAt, null);
    assert.ok((timeline.periods[3].expectedFinalAt ?? 0) >= H + HOUR, `expected final after the hour ends: ${timeline.periods[3].expectedFinalAt}`);
    assert.equal(timeline.closeAfterMs, 12_000);
    assert.equal((await server.get('/api/v1/billing/periods?from=2025-01-01T00:30:00Z', 'tok-adv1')).status, 400);
    assert.equal((await server.get('/api/v1/billing/periods')).status, 401);

    // Late data for the final hours: too late now, it never edits them; it shows where it arrived.
    const late = [...spreadEvents('bill-late2-', 4, H - 2 * HOUR + 5_000, H - 2 * HOUR + 9_000), ...spreadEvents('bill-late1-', 6, H - HOUR + 5_000, H - HOUR + 9_000)]
      .map((e) => ({ ...e, advertiser_id: 'bill-adv-1', campaign_id: 'bill-adv-1-cmp-1' }));
    await produceEvents(config, late, (i) => routes[i % 3]);
    await eventually('the late events dead-lettered', async () => {
      const rows = await queryRows<{ n: string }>(client, `SELECT count() AS n FROM ${config.clickhouse.database}.dead_letters FINAL WHERE reason = 'too_late'`);
      return Number(rows[0].n) === late.length;
    }, 60_000);
    for (const [adv, before] of finals) {
      const { res } = await exportCsv(adv, past.from, past.to);
      assert.ok(res.body.equals(before), `${adv}: the final statement is byte-identical after late data`);
    }
    const arrived = await exportCsv('bill-adv-1', H, H + HOUR);
    assert.equal(arrived.csv.meta.late_unbillable, String(late.length));
    assert.deepEqual(arrived.csv.lists.late_unbillable_from, [`${isoUtc(H - 2 * HOUR)} 4`, `${isoUtc(H - HOUR)} 6`]);

    // JSON, daily: the canonical digest over header, rows and totals.
    const dayFrom = Math.floor(past.from / DAY) * DAY;
    const dayTo = Math.floor(H / DAY) * DAY + DAY;
    const jres = await server.get(exportUrl({ advertiser_id: 'bill-adv-1', from: isoUtc(dayFrom).slice(0, 10), to: isoUtc(dayTo).slice(0, 10), format: 'json' }), 'tok-adv1');
    assert.equal(jres.status, 200, jres.body.toString());
    assert.equal(jres.headers['x-tally-export-status'], 'provisional');
    type JsonRow = { period_start: string; campaign_id: string; impressions: string; spend_micros: string; spend: string; maturity: string };
    const doc = JSON.parse(jres.body.toString('utf8')) as Record<string, unknown> & { rows: JsonRow[]; totals: Record<string, string>; sha256: string };
    assert.equal(doc.status, 'provisional');
    assert.deepEqual(doc.rows.map((r) => [r.period_start, r.campaign_id, r.impressions, r.spend_micros]), expectedRows(truth, 'bill-adv-1', dayFrom, dayTo, DAY));
    for (const r of doc.rows) assert.equal(r.maturity, Date.parse(r.period_start) + DAY <= H ? 'final' : 'live', 'a day with an open hour is live');
    assert.equal(doc.totals.impressions, doc.rows.reduce((a, r) => a + BigInt(r.impressions), 0n).toString());
    const header = {
      status: doc.status, advertiser_id: doc.advertiser_id, from: doc.from, to: doc.to, granularity: doc.granularity,
      late_unbillable: doc.late_unbillable, lineage: doc.lineage,
    };
    const canonical = [header, ...doc.rows, doc.totals].map((o) => `${JSON.stringify(o)}\n`).join('');
    assert.equal(doc.sha256, crypto.createHash('sha256').update(canonical).digest('hex'));
    assert.equal(jres.trailers['x-tally-export-sha256'], doc.sha256);

    // Access: another advertiser → 403; no or a bad token → 401; an ingest token reads nothing.
    const ok = { advertiser_id: 'bill-adv-2', from: isoUtc(past.from), to: isoUtc(H), granularity: 'hour' };
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
    const still = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${config.clickhouse.database}.billing_ledger`);
    assert.ok(Number(still[0].n) > 0, 'the ledger is still there');
  });

  it('CSV statements are safe in a spreadsheet: ids starting with - are written \'-…, in rolled-up and ledger rows and totals; the digest verifies; JSON as it is', async () => {
    sb = await createSandbox('billcsvinj');
    const { config } = sb;
    ch = createClickHouse(config);
    const db = config.clickhouse.database;
    // Ids any ingest token may write (^[A-Za-z0-9._:-]{1,128}$): an advertiser and a campaign starting with '-'.
    const adv = '-inj-adv';
    const from = Date.UTC(2025, 0, 1);
    const to = from + 2 * HOUR;
    const sec = (ms: number) => ms / 1000;
    // Two final hours: the first rolled up (billing_statement + final_periods), the second still in
    // the ledger, so both of the statement's queries render these ids.
    const ledger: Array<[number, string, number, number, number, number]> = [ // period, campaign, partition, impressions, micros, duplicates
      [from, '-cmp-1', 0, 10, 12_500, 1], [from, 'cmp-2', 1, 3, 7, 0], [from + HOUR, '-cmp-1', 2, 7, 1, 2],
    ];
    await ch.command({
      query: `INSERT INTO ${db}.billing_ledger (period_start, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, closed_at) VALUES `
        + ledger.map(([p, c, part, i, s, d]) => `(toDateTime(${sec(p)}), '${adv}', '${c}', ${part}, ${i}, ${s}, ${d}, toDateTime(${sec(to)}))`).join(', '),
    });
    await ch.command({
      query: `INSERT INTO ${db}.billing_statement (period_start, advertiser_id, campaign_id, impressions, spend_micros, duplicates, rollup_id) VALUES `
        + ledger.filter(([p]) => p === from).map(([p, c, , i, s, d]) => `(toDateTime(${sec(p)}), '${adv}', '${c}', ${i}, ${s}, ${d}, 1)`).join(', '),
    });
    await ch.command({ query: `INSERT INTO ${db}.final_periods (period_start, final_at, statement_rows, rollup_id) VALUES (toDateTime(${sec(from)}), toDateTime(${sec(to)}), 2, 1)` });
    await ch.command({
      query: `INSERT INTO ${db}.period_closes (period_start, source_partition, closed_at, watermark_ms, ledger_rows, source_topic, source_first_offset, source_close_offset, repartition_topic, repartition_first_offset, repartition_close_offset) VALUES `
        + Array.from({ length: config.partitions }, (_, p) => `(toDateTime(${sec(to - HOUR)}), ${p}, toDateTime(${sec(to) + 60}), ${to + HOUR}, 1, 'impressions', 0, 10, 'aggregator-repartition', -1, 0)`).join(', '),
    });
    const srv = await BillingServer.start(config, ch, { admin: { tokenId: 'a', name: 'admin', scopes: ['admin'] } });
    server = srv;
    const q = { advertiser_id: adv, from: isoUtc(from), to: isoUtc(to), granularity: 'hour' };

    const res = await srv.get(exportUrl({ ...q, format: 'csv' }), 'admin');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.headers['x-tally-export-status'], 'final');
    const text = res.body.toString('utf8');
    const csv = parseCsv(text); // also checks the trailer: the sha256 of the bytes served, before it
    assert.equal(res.trailers['x-tally-export-sha256'], csv.sha256, 'HTTP trailer = file trailer');
    assert.ok(text.includes(`\n${isoUtc(from)},'-inj-adv,'-cmp-1,10,12500,0.012500,1,final\n`), text);
    assert.deepEqual(csv.rows, [
      [isoUtc(from), "'-inj-adv", "'-cmp-1", '10', '12500', '0.012500', '1', 'final'],
      [isoUtc(from), "'-inj-adv", 'cmp-2', '3', '7', '0.000007', '0', 'final'],
      [isoUtc(from + HOUR), "'-inj-adv", "'-cmp-1", '7', '1', '0.000001', '2', 'final'],
    ]);
    assert.deepEqual(csv.total, ['total', "'-inj-adv", '', '20', '12508', '0.012508', '3', 'final'], 'totals: rolled-up sums added to the ledger\'s');
    assert.equal(csv.meta.advertiser, adv, 'inside the comment cell (it starts with #) the id is as it is');
    // No cell of any line, split at commas or semicolons (the separator of some locales), starts a formula.
    for (const line of text.split('\n')) {
      for (const cell of line.split(/[,;]/)) assert.doesNotMatch(cell, /^[-=+@\t\r]/, line);
    }
    assert.ok((await srv.get(exportUrl({ ...q, format: 'csv' }), 'admin')).body.equals(res.body), 'a final export is byte-identical on repeat');

    // JSON values are JSON strings: the ids as they are, and the canonical digest verifies.
    const jres = await srv.get(exportUrl({ ...q, format: 'json' }), 'admin');
    assert.equal(jres.status, 200, jres.body.toString());
    const doc = JSON.parse(jres.body.toString('utf8')) as Record<string, unknown> & { rows: Array<Record<string, string>>; totals: Record<string, string>; sha256: string };
    assert.equal(doc.advertiser_id, adv);
    assert.deepEqual(doc.rows.map((r) => [r.advertiser_id, r.campaign_id, r.impressions]), [[adv, '-cmp-1', '10'], [adv, 'cmp-2', '3'], [adv, '-cmp-1', '7']]);
    const header = {
      status: doc.status, advertiser_id: doc.advertiser_id, from: doc.from, to: doc.to, granularity: doc.granularity,
      final_at: doc.final_at, late_unbillable: doc.late_unbillable, lineage: doc.lineage,
    };
    const canonical = [header, ...doc.rows, doc.totals].map((o) => `${JSON.stringify(o)}\n`).join('');
    assert.equal(doc.sha256, crypto.createHash('sha256').update(canonical).digest('hex'));
    assert.equal(jres.trailers['x-tally-export-sha256'], doc.sha256);
  });

  it('streams a month of hourly rows × 1000 campaigns (720k rows) from the ledger with bounded memory', async () => {
    sb = await createSandbox('billbig');
    const { config } = sb;
    ch = createClickHouse(config, { requestTimeoutMs: 60_000 });
    const db = config.clickhouse.database;
    const from = Date.UTC(2025, 0, 1);
    const to = from + 30 * DAY;
    const base = from / 1000;
    // A closed month: its ledger rows (each (hour, campaign) in one partition) and every partition's close of its last hour.
    await ch.command({
      query: `INSERT INTO ${db}.billing_ledger (period_start, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, closed_at) `
        + `SELECT toDateTime(${base} + intDiv(number, 1000) * 3600), 'big-adv', `
        + "concat('cmp-', toString(number % 1000)), toUInt16(number % 8), toUInt64(number % 1000 + 1), toUInt64((number * 7919) % 5000000), "
        + `toUInt64(number % 3), toDateTime(${to / 1000}) FROM system.numbers LIMIT 720000`,
    });
    await ch.command({
      query: `INSERT INTO ${db}.period_closes (period_start, source_partition, closed_at, watermark_ms, ledger_rows, source_topic, source_first_offset, source_close_offset, repartition_topic, repartition_first_offset, repartition_close_offset) VALUES `
        + Array.from({ length: config.partitions }, (_, p) => `(toDateTime(${(to - HOUR) / 1000}), ${p}, toDateTime(${to / 1000 + 60}), ${to + HOUR}, 1, 'impressions', 0, 10, 'aggregator-repartition', -1, 0)`).join(', '),
    });
    const [expected] = await queryRows<{ i: string; s: string; d: string }>(ch,
      `SELECT sum(impressions) AS i, sum(spend_micros) AS s, sum(duplicates) AS d FROM ${db}.billing_ledger WHERE advertiser_id = 'big-adv'`);
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
    // 7 comment lines + 8 lineage lines + header + 720 000 rows + total + sha256
    assert.equal(a.lines, 7 + 8 + 1 + 720_000 + 1 + 1);
    const totalLine = a.tail.split('\n').at(-3) as string;
    assert.equal(totalLine, `total,big-adv,,${expected.i},${expected.s},${formatMicros(BigInt(expected.s))},${expected.d},final`);
    const b = await run();
    assert.equal(b.digest, a.digest, 'byte-identical on repeat');
    assert.equal(b.res.trailers['x-tally-export-sha256'], a.res.trailers['x-tally-export-sha256']);
    process.stderr.write(`      [billing] 720k rows, ${(a.bytes / 2 ** 20).toFixed(1)} MiB CSV: ${a.ms} ms / ${b.ms} ms, peak RSS delta ${a.rssDeltaMb.toFixed(1)} / ${b.rssDeltaMb.toFixed(1)} MiB (server + client in this process)\n`);
    assert.ok(Math.min(a.rssDeltaMb, b.rssDeltaMb) < 100, `peak RSS grew by ${a.rssDeltaMb.toFixed(1)} / ${b.rssDeltaMb.toFixed(1)} MiB`);
  });
});
