/**
 * Billing exports on the real stack: the whole pipeline (aggregator + `tally sink`, which also
 * runs the dead-letter sink) fed with impressions across past hours, then exports over HTTP (the
 * billing router in a small express app behind the API's auth middleware with a fake token
 * verifier) and the CLI, compared row by row with what was produced: final statements from the
 * ledger, byte-identical whatever arrives later, late events reported where they arrived.
 * Statements of ledger rows inserted directly: billing-ledger-rows.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import type { BillingPeriodsResponse } from '../../server/src/contracts/api-types.js';
import { formatMicros, isoUtc } from '../../server/src/billing/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { repoRoot } from '../../server/src/config/index.js';
import { truthTotals, type GroundTruth } from '../../server/src/tools/index.js';
import { spreadEvents, produceEvents, truthOf, type HandEvent } from '../kit/hand-events.js';
import { createSandbox, eventually, sleep, type Sandbox } from '../kit/harness.js';
import { assertExact, awaitFinal, Pipeline } from '../kit/pipeline.js';
import { BillingServer, DAY, expectedRows, exportUrl, HOUR, parseCsv } from './billing-fixtures.js';

const ROUTES = ['home', 'foreign', 'nokey'] as const;

describe('billing export: final statements from the ledger (real Kafka + ClickHouse)', function () {
  this.timeout(600_000);
  let sb: Sandbox;
  let pipeline: Pipeline;
  let ch: ClickHouseClient;
  let server: BillingServer;
  /** The current hour when the events were produced: the three before it are final, it is not. */
  let H: number;
  let truth: GroundTruth;
  let copies: number;
  const past = () => ({ from: H - 3 * HOUR, to: H });

  /** Three past hours and the current one, 2 advertisers × 2 campaigns, copies, every route; counted, and the past hours final. */
  before(async function () {
    this.timeout(600_000);
    // Hours close once the watermark passes their end + lateness + horizon: 2 s + 10 s here.
    sb = await createSandbox('billing', { TALLY_ALLOWED_LATENESS_MS: '2000', TALLY_DEDUP_HORIZON_MS: '10000', TALLY_OUT_OF_ORDERNESS_MS: '1000', TALLY_IDLE_TIMEOUT_MS: '1000' });
    const { config } = sb;
    pipeline = new Pipeline(sb);
    pipeline.startSink();
    pipeline.startAggregator();
    // A time-of-hour guard, not a wait for an event: the last past hour must be able to close (its
    // end + 12 s) while this hour lasts.
    if (Date.now() % HOUR < 20_000) await sleep(20_000 - (Date.now() % HOUR));
    H = Math.floor(Date.now() / HOUR) * HOUR;
    const events: HandEvent[] = [];
    for (let h = 3; h >= 1; h--) events.push(...spreadEvents(`bill-h${h}-`, 400, H - h * HOUR + 1_000, H - (h - 1) * HOUR - 60_000));
    const current = spreadEvents('bill-now-', 300, Date.now() - 5_000, Date.now());
    events.push(...current);
    const byAdv = (e: HandEvent) => ({ ...e, advertiser_id: e.advertiser_id.replace(/^bill-[a-z0-9]+-/, 'bill-'), campaign_id: e.campaign_id.replace(/^bill-[a-z0-9]+-/, 'bill-') });
    const all = events.map(byAdv);
    copies = all.filter((_, i) => i % 9 === 0).length;
    // Each copy right after its original (a retry), through another route.
    await produceEvents(config, all.flatMap((e, i) => (i % 9 === 0 ? [e, e] : [e])), (i) => ROUTES[i % 3]);
    truth = truthOf(config, 'bill-', all, copies);
    await assertExact(pipeline, truth);
    await awaitFinal(config, H);

    ch = createClickHouse(config);
    server = await BillingServer.start(config, ch, {
      'tok-adv1': { tokenId: 't1', name: 'adv1', scopes: ['advertiser:bill-adv-1'] },
      'tok-admin': { tokenId: 't2', name: 'admin', scopes: ['admin'] },
      'tok-ingest': { tokenId: 't3', name: 'ingest', scopes: ['ingest'] },
    });
  });

  after(async function () {
    this.timeout(120_000);
    await server?.close();
    await ch?.close();
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  /** An hourly CSV statement as admin, checked: 200, its content type, the HTTP trailer = the file's. */
  const exportCsv = async (adv: string, from: number, to: number) => {
    const res = await server.get(exportUrl({ advertiser_id: adv, from: isoUtc(from), to: String(to), granularity: 'hour', format: 'csv' }), 'tok-admin');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.headers['content-type'], 'text/csv; charset=utf-8');
    const csv = parseCsv(res.body.toString('utf8'));
    assert.equal(res.trailers['x-tally-export-sha256'], csv.sha256, 'HTTP trailer = file trailer');
    return { res, csv };
  };

  it('final and provisional statements hold exactly what was produced; a final one is byte-identical on repeat and from the CLI', async () => {
    const { config } = sb;
    let impressions = 0n;
    let spend = 0n;
    let duplicates = 0n;
    for (const adv of ['bill-adv-1', 'bill-adv-2']) {
      for (const [from, to, status] of [[past().from, past().to, 'final'], [H, H + HOUR, 'provisional']] as const) {
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
          // The Kafka offsets the numbers came from: both inputs of every partition.
          assert.equal(csv.lists.lineage?.length, config.partitions, csv.lists.lineage?.join('\n'));
          for (const l of csv.lists.lineage ?? []) assert.match(l, /^\S+impressions\/\d+ \[(\d+|none), \d+\) \S+aggregator-repartition\/\d+ \[(\d+|none), \d+\)$/);
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
    assert.equal(duplicates, BigInt(copies), 'duplicates removed');
  });

  it('billing periods: the past hours final since their closes, the current one live with an expected time', async () => {
    const { config } = sb;
    const { from, to } = past();
    // The statement's final_at is its last hour's.
    const finalAt = (await exportCsv('bill-adv-2', from, to)).csv.meta.final_at;
    const pres = await server.get(`/api/v1/billing/periods?from=${isoUtc(from)}&to=${isoUtc(H + HOUR)}`, 'tok-adv1');
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
  });

  it('late data for the final hours never edits their statements; it shows where it arrived', async () => {
    const { config } = sb;
    const { from, to } = past();
    const finals = new Map<string, Buffer>();
    for (const adv of ['bill-adv-1', 'bill-adv-2']) finals.set(adv, (await exportCsv(adv, from, to)).res.body);
    // Late data for the final hours: too late now, it never edits them; it shows where it arrived.
    const late = [...spreadEvents('bill-late2-', 4, H - 2 * HOUR + 5_000, H - 2 * HOUR + 9_000), ...spreadEvents('bill-late1-', 6, H - HOUR + 5_000, H - HOUR + 9_000)]
      .map((e) => ({ ...e, advertiser_id: 'bill-adv-1', campaign_id: 'bill-adv-1-cmp-1' }));
    await produceEvents(config, late, (i) => ROUTES[i % 3]);
    await eventually('the late events dead-lettered', async () => {
      const rows = await queryRows<{ n: string }>(ch, `SELECT count() AS n FROM ${config.clickhouse.database}.dead_letters FINAL WHERE reason = 'too_late'`);
      return Number(rows[0].n) === late.length;
    }, 60_000);
    for (const [adv, before] of finals) {
      const { res } = await exportCsv(adv, from, to);
      assert.ok(res.body.equals(before), `${adv}: the final statement is byte-identical after late data`);
    }
    const arrived = await exportCsv('bill-adv-1', H, H + HOUR);
    assert.equal(arrived.csv.meta.late_unbillable, String(late.length));
    assert.deepEqual(arrived.csv.lists.late_unbillable_from, [`${isoUtc(H - 2 * HOUR)} 4`, `${isoUtc(H - HOUR)} 6`]);
  });

  it('a daily JSON statement: rows as produced, days with an open hour live, the canonical digest', async () => {
    const { from } = past();
    const dayFrom = Math.floor(from / DAY) * DAY;
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
  });

  it('another advertiser 403, no or a bad token 401; bad and injection-shaped input 400 naming the parameter', async () => {
    const { config } = sb;
    const ok = { advertiser_id: 'bill-adv-2', from: isoUtc(past().from), to: isoUtc(H), granularity: 'hour' };
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
});
