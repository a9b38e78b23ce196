/**
 * tally's SQL on a current ClickHouse and on the local 18.16 server, on the same data (issue 14).
 * The current one is chdb-core from PyPI (ClickHouse 26.x in-process) behind ClickHouse's HTTP
 * interface (server/src/stack/current-clickhouse.ts). Both get the migrations; one aggregator
 * counts hand-made impressions over three past hours (final: the ledger) and the current one plus
 * a generated run with bad records, and a sink per ClickHouse (groups of its own) writes its
 * records into each. Then every query family tally issues runs on both and must answer the same:
 * the sinks' inserts (table by table), the REST reads and billing routes of a `tally api` on each,
 * the export bytes ClickHouse renders, the ledger, live-feed, verify and reconcile reads, the token
 * store, and errors. Every difference found is listed at once. The first run installs chdb-core
 * into the cache (~180 MB from PyPI); later runs start it in under a second.
 */
import assert from 'node:assert/strict';
import { identifier, migrate, queryRows } from '../../server/src/clickhouse/index.js';
import { loadMigrations } from '../../server/src/clickhouse/migrate.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { isoUtc, runExport, type ExportQuery } from '../../server/src/billing/index.js';
import { periodRowsSql, queryFinalAt, queryFrontier, queryLateUnbillable, queryLineage, queryLastReconciliation, queryPeriodCloses } from '../../server/src/ledger/index.js';
import { closedTotals, clickhouseMinWatermark, preloadRows } from '../../server/src/live/live-clickhouse.js';
import { ensureCurrentClickHouse, CurrentClickHouse, CHDB_CORE_VERSION } from '../../server/src/stack/index.js';
import {
  formatVerifyReport, generate, queryActualRows, reconcile, recordReconciliation, verify, type GroundTruth,
} from '../../server/src/tools/index.js';
import { createSandbox, eventually, RoleProcess, sleep, type Sandbox } from '../kit/harness.js';
import { produceEvents, spreadEvents, truthOf, type HandEvent } from '../kit/hand-events.js';
import { awaitFinal } from '../kit/pipeline.js';
import { call, startApi } from './api-fixtures.js';
import { Differences, jsonText, side, startSinks, TABLE_NAMES, tableText, type Side, type Sink } from './current-clickhouse-fixtures.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const ROUTES = ['home', 'foreign', 'nokey'] as const;
const ADVERTISERS = ['cur-adv-1', 'cur-adv-2', 'cur-whale'];
/** Whale impressions at the contract's top price: one hour of one campaign holds an odd spend above 2^53. */
const WHALE = { count: 9_101, cost: 999_999_999_999 };

describe('tally\'s SQL on a current ClickHouse (chdb) and on 18.16: same data, same answers', function () {
  this.timeout(900_000);
  let sb: Sandbox;
  let current: CurrentClickHouse | undefined;
  let sides: Side[] = [];
  let diffs: Differences;
  const sinks: Sink[] = [];
  let aggregator: RoleProcess | undefined;
  const apis: Array<{ api: RoleProcess; base: string; tokens: Record<'admin' | 'reader', string> }> = [];
  let migrated: string[];
  /** The current hour when the events were produced: the three before it become final. */
  let H: number;
  let truth: GroundTruth;
  const sortedBy = <T>(rows: T[]) => [...rows].sort((a, b) => (jsonText(a) < jsonText(b) ? -1 : 1));
  const db = () => sb.config.clickhouse.database;

  before(async function () {
    this.timeout(900_000);
    const log = (m: string) => process.stderr.write(`      [current clickhouse] ${m}\n`);
    // Hours close once the watermark passes their end + lateness + horizon: 2 s + 10 s here.
    sb = await createSandbox('curch', { TALLY_ALLOWED_LATENESS_MS: '2000', TALLY_DEDUP_HORIZON_MS: '10000', TALLY_OUT_OF_ORDERNESS_MS: '1000', TALLY_IDLE_TIMEOUT_MS: '1000' });
    current = await CurrentClickHouse.start({ python: await ensureCurrentClickHouse(sb.config.cacheDir, log) });
    log(`ClickHouse ${current.version} (chdb-core ${CHDB_CORE_VERSION}) at ${current.url}`);
    sides = [side('18.16', sb.env), side(current.version, { ...sb.env, ...current.env })];
    diffs = new Differences(sides);
    migrated = await migrate([sides[1].ch], db());
    sinks.push(...await startSinks(sides[0], ''), ...await startSinks(sides[1], 'current-'));
    aggregator = new RoleProcess('aggregator', { ...sb.env, TALLY_INSTANCE_ID: 'agg-1' });

    // A time-of-hour guard, not a wait for an event: the last past hour must close while this one lasts.
    if (Date.now() % HOUR < 20_000) await sleep(20_000 - (Date.now() % HOUR));
    H = Math.floor(Date.now() / HOUR) * HOUR;
    const counted: HandEvent[] = [];
    let copies = 0;
    let late = 0;
    const produceCounted = async (events: HandEvent[]) => {
      copies += events.filter((_, i) => i % 9 === 0).length;
      counted.push(...events);
      await produceEvents(sb.config, events.flatMap((e, i) => (i % 9 === 0 ? [e, e] : [e])), (i) => ROUTES[i % 3]);
    };
    const produceLate = async (prefix: string, from: number) => {
      late += 6;
      await produceEvents(sb.config, spreadEvents(prefix, 6, from, from + 4_000).map((e) => ({ ...e, advertiser_id: 'cur-adv-1', campaign_id: 'cur-adv-1-cmp-1' })), (i) => ROUTES[i % 3]);
      for (const s of sides) {
        await eventually(`${s.name}: the late events dead-lettered`, async () =>
          Number((await queryRows<{ n: string }>(s.ch, `SELECT count() AS n FROM ${identifier(db())}.dead_letters FINAL WHERE reason = 'too_late'`))[0].n) === late, 120_000);
      }
    };
    const finalBefore = async (s: Side, t: number) => eventually(`${s.name}: periods before ${isoUtc(t)} final`, async () =>
      ((await queryFrontier(s.ch, db(), sb.config.partitions)).finalBefore ?? 0) >= t, 120_000);

    // 1. The three past hours, in time order (an hour closes only after all of its events were read):
    //    their traffic alone closes the first two.
    const past: HandEvent[] = [];
    for (let h = 3; h >= 1; h--) past.push(...spreadEvents(`cur-h${h}-`, 300, H - h * HOUR + 1_000, H - (h - 1) * HOUR - 60_000));
    await produceCounted([
      ...past.map((e) => ({ ...e, advertiser_id: e.advertiser_id.replace(/^cur-[a-z0-9]+-/, 'cur-'), campaign_id: e.campaign_id.replace(/^cur-[a-z0-9]+-/, 'cur-') })),
      // A campaign id a spreadsheet would read as a formula: CSV fields neutralised by ClickHouse's match().
      ...spreadEvents('cur-dash-', 20, H - HOUR + 2_000, H - HOUR + 600_000).map((e) => ({ ...e, advertiser_id: 'cur-adv-2', campaign_id: '-cur-adv-2-dash' })),
      ...spreadEvents('cur-whale-', WHALE.count, H - 2 * HOUR + 1_000, H - HOUR - 60_000).map((e) => ({ ...e, advertiser_id: 'cur-whale', campaign_id: 'cur-whale-cmp-1', cost_micros: WHALE.cost })),
    ].sort((a, b) => a.ts - b.ts));
    for (const s of sides) await finalBefore(s, H - HOUR);
    // 2. Too late for the first hour while the watermark is in the last one: billed as late there (billing_late).
    await produceLate('cur-late3-', H - 3 * HOUR + 5_000);
    // 3. The current hour: hand-made, then generated (duplicates, every kind of bad record, every key mode).
    await produceCounted(spreadEvents('cur-now-', 200, Date.now() - 5_000, Date.now()).map((e) => ({ ...e, advertiser_id: e.advertiser_id.replace(/^cur-now-/, 'cur-'), campaign_id: e.campaign_id.replace(/^cur-now-/, 'cur-') })));
    truth = truthOf(sb.config, 'cur-', counted, copies);
    const generated = await generate(sb.config, { count: 1_500, idPrefix: 'gen-', seed: 14, keyMode: 'mixed', bad: 18, tooLate: 0, lateWithinHorizon: 0, batch: 500 });
    for (const s of sides) {
      for (const t of [truth, generated]) {
        const r = await verify(s.config, t, { timeoutMs: 180_000, stableMs: 2_000 });
        assert.ok(r.ok, `${s.name}: ${formatVerifyReport(r)}`);
      }
    }
    await awaitFinal(sb.config, H);
    await finalBefore(sides[1], H);
    // 4. Too late for the second hour once every past hour is final: dead letters of the current hour.
    await produceLate('cur-late2-', H - 2 * HOUR + 5_000);
    // Nothing moves from here on: the aggregator stops, both sinks catch up with what it committed.
    await aggregator.stop();
    const snapshots = async () => Promise.all(sides.map(async (s) => (await Promise.all(TABLE_NAMES.map((t) => tableText(s, t)))).join('\n')));
    await eventually('both ClickHouses hold the same rows', async () => new Set(await snapshots()).size === 1, 90_000).catch(() => undefined);

    for (const s of sides) {
      const store = TokenStore.forClickHouse(s.ch, db());
      const admin = (await store.create('cur admin', ['admin'])).token;
      const reader = (await store.create('cur reader', ['advertiser:cur-adv-2', 'advertiser:cur-whale', 'advertiser:cur-none'])).token;
      apis.push({ ...await startApi(s.env), tokens: { admin, reader } });
    }
  });

  after(async function () {
    this.timeout(120_000);
    await Promise.all([...apis.map((a) => a.api.stop()), aggregator?.stop(), ...sinks.map((k) => k.stop())]);
    await Promise.all(sides.map((s) => s.ch.close()));
    await current?.stop();
    await sb?.cleanup();
  });

  it('the migrations create the same tables, columns and engines; a second run applies nothing', async () => {
    assert.deepEqual(migrated, loadMigrations().map((m) => m.name));
    const where = (s: Side) => `database = '${identifier(s.config.clickhouse.database)}'`;
    await diffs.compare('tables', async (s) => queryRows(s.ch, `SELECT name, engine FROM system.tables WHERE ${where(s)} ORDER BY name`));
    await diffs.compare('columns', async (s) => queryRows(s.ch, `SELECT table, name, type, default_kind, default_expression FROM system.columns WHERE ${where(s)} ORDER BY table, name`));
    await diffs.compare('migrate again', (s) => migrate([s.ch], db()));
    // A crash after every statement ran but before any was recorded: each runs again harmlessly (the
    // ADD COLUMN of 013 included, which 18.16 cannot say IF NOT EXISTS for).
    await diffs.compare('migrate after losing the record', async (s) => {
      await s.ch.command({ query: `DROP TABLE ${identifier(db())}.schema_migrations` });
      return migrate([s.ch], db());
    });
    diffs.assertNone();
    assert.deepEqual(await migrate([sides[0].ch], db()), []);
  });

  it('the sinks wrote the same rows into every table (counts, watermarks, dead letters, ledger, roll-ups)', async () => {
    for (const t of TABLE_NAMES) await diffs.compare(t, (s) => tableText(s, t));
    diffs.assertNone();
    // Not vacuous: the whale's hour rolled up, dead letters of every kind, late events billed where they arrived.
    assert.match(await tableText(sides[0], 'billing_statement'), new RegExp(`cur-whale-cmp-1\t${WHALE.count}\t${BigInt(WHALE.count) * BigInt(WHALE.cost)}\t`));
    assert.ok((await tableText(sides[0], 'dead_letters')).split('\n').length > 18);
    assert.match(await tableText(sides[0], 'billing_late'), /cur-adv-1/);
    assert.match(await tableText(sides[0], 'impression_breakdowns'), /\tcountry\t[A-Z]{2}\t[1-9]/);
  });

  it('the REST reads and billing routes of a `tally api` on each answer the same', async () => {
    const range = `from=${H - 3 * HOUR}&to=${H + HOUR}`;
    const paths: ReadonlyArray<readonly ['admin' | 'reader' | null, string]> = [
      [null, '/readyz'],
      ...['window', 'hour', 'day'].map((g) => ['admin', `/api/v1/counts?${range}&granularity=${g}`] as const),
      ['admin', `/api/v1/counts?${range}&granularity=hour&advertiser_id=cur-whale`],
      ['admin', `/api/v1/counts?${range}&granularity=window&advertiser_id=cur-adv-1&campaign_id=cur-adv-1-cmp-1`],
      ['reader', `/api/v1/counts?${range}&granularity=day&advertiser_id=cur-adv-2&campaign_id=-cur-adv-2-dash`],
      ...['window', 'hour', 'day', 'total'].map((g) => ['admin', `/api/v1/breakdown?${range}&dimension=country&granularity=${g}`] as const),
      ['reader', `/api/v1/breakdown?${range}&dimension=device&advertiser_id=cur-adv-2`],
      ['admin', `/api/v1/breakdown?${range}&dimension=creative_id&advertiser_id=cur-adv-1&campaign_id=cur-adv-1-cmp-1&granularity=hour`],
      ['admin', '/api/v1/campaigns'], ['admin', '/api/v1/advertisers'], ['reader', '/api/v1/campaigns'], ['reader', '/api/v1/advertisers'],
      ['reader', `/api/v1/billing/periods?from=${isoUtc(H - 3 * HOUR)}&to=${isoUtc(H + HOUR)}`],
    ];
    for (const [who, path] of paths) {
      await diffs.compare(`${path} (${who ?? 'no token'})`, async (s) => {
        const { base, tokens } = apis[sides.indexOf(s)];
        const { status, body } = await call<Record<string, unknown>>(base, path, { token: who === null ? undefined : tokens[who] });
        // The time of the answer and when an open hour is expected to close are the only clocks in these answers.
        const { serverTime: _t, ...rest } = body;
        const periods = (rest.periods as Array<Record<string, unknown>> | undefined)?.map(({ expectedFinalAt: _e, ...p }) => p);
        return { status, ...rest, ...(periods === undefined ? {} : { periods }) };
      });
    }
    const exportPath = `/api/v1/billing/export?advertiser_id=cur-adv-2&from=${isoUtc(H - 3 * HOUR)}&to=${isoUtc(H)}&granularity=hour&format=csv`;
    await diffs.compare(exportPath, async (s) => {
      const { base, tokens } = apis[sides.indexOf(s)];
      const res = await fetch(base + exportPath, { headers: { authorization: `Bearer ${tokens.reader}` } });
      return { status: res.status, body: await res.text() };
    });
    // The pipeline page's exact check and last reconciliation, once each API's monitor has run.
    const pipeline = async (s: Side) => {
      const { base, tokens } = apis[sides.indexOf(s)];
      const { body } = await call<{ clickhouseReachable: boolean; exact: unknown; reconciliation: unknown }>(base, '/api/v1/pipeline', { token: tokens.admin });
      return { clickhouseReachable: body.clickhouseReachable, exact: body.exact, reconciliation: body.reconciliation };
    };
    await eventually('both pipeline pages show an exact check', async () => (await Promise.all(sides.map(pipeline))).every((p) => p.exact !== null), 60_000).catch(() => undefined);
    await diffs.compare('/api/v1/pipeline', pipeline);
    diffs.assertNone();
  });

  it('billing exports are byte-identical: CSV and JSON, hourly and daily, final and provisional', async () => {
    const ranges: Array<[string, number, number, ExportQuery['granularity']]> = [
      ['final', H - 3 * HOUR, H, 'hour'], ['provisional', H - 3 * HOUR, H + HOUR, 'hour'], ['days', Math.floor((H - 3 * HOUR) / DAY) * DAY, Math.floor(H / DAY) * DAY + DAY, 'day'],
    ];
    for (const advertiserId of ADVERTISERS) {
      for (const [label, from, to, granularity] of ranges) {
        for (const format of ['csv', 'json'] as const) {
          await diffs.compare(`export ${advertiserId} ${label} ${granularity} ${format}`, async (s) => {
            let bytes = '';
            const r = await runExport(s.ch, s.config, { advertiserId, from, to, granularity, format }, async (chunk) => { bytes += chunk; }, { now: () => H });
            return { bytes, rows: r.rows, status: r.status };
          });
        }
      }
    }
    diffs.assertNone();
  });

  it('ledger, live-feed and verify reads answer the same', async () => {
    const n = sb.config.partitions;
    await diffs.compare('frontier', (s) => queryFrontier(s.ch, db(), n));
    for (const adv of ADVERTISERS) await diffs.compare(`late unbillable ${adv}`, (s) => queryLateUnbillable(s.ch, db(), adv, H - 3 * HOUR, H + HOUR, H));
    // Final hours not rolled up yet are read from billing_ledger: as before the sink's roll-up.
    const q = { advertiserId: null, campaignId: null, from: H - 3 * HOUR, to: H + HOUR, periodMs: HOUR };
    await diffs.compare('ledger rows (not rolled up)', (s) => queryRows(s.ch, periodRowsSql(db(), q, { finalBefore: H, rolledBefore: null }, null)));
    await diffs.compare('lineage', (s) => queryLineage(s.ch, db(), H - 3 * HOUR, H));
    await diffs.compare('final at', (s) => queryFinalAt(s.ch, db(), H - HOUR, n));
    await diffs.compare('period closes', async (s) => sortedBy(await queryPeriodCloses(s.ch, db(), H - 3 * HOUR, H + HOUR)));
    await diffs.compare('live preload', async (s) => sortedBy(await preloadRows(s.ch, db(), H - 4 * HOUR)));
    await diffs.compare('live min watermark', (s) => clickhouseMinWatermark(s.ch, db(), n));
    await diffs.compare('live closed totals', (s) => closedTotals(s.ch, db(), H - 4 * HOUR, H));
    for (const prefix of ['cur-', 'gen-', '']) await diffs.compare(`verify rows '${prefix}'`, async (s) => sortedBy(await queryActualRows(s.ch, db(), prefix)));
    diffs.assertNone();
  });

  it('reconcile recomputes the same from Kafka and records the same run', async () => {
    const ranAt = H + 60_000;
    await diffs.compare('reconcile', async (s) => {
      const r = await reconcile(s.config, s.ch, H - 3 * HOUR, H);
      await recordReconciliation(s.ch, db(), r, ranAt);
      return r;
    });
    await diffs.compare('last reconciliation', (s) => queryLastReconciliation(s.ch, db()));
    diffs.assertNone();
  });

  it('the token store creates, lists, verifies and revokes alike', async () => {
    await diffs.compare('tokens', async (s) => {
      const store = TokenStore.forClickHouse(s.ch, db(), { cacheMs: 0, negativeCacheMs: 0 });
      const reader = await store.create('cur reader', ['advertiser:cur-adv-1']);
      const ingest = await store.create('cur ingest', ['ingest:cur-adv-2', 'ingest']);
      const revokes = [await store.revoke(ingest.id), await store.revoke(ingest.id), await store.revoke('0123456789ab')];
      const principal = (token: string) => store.verify(token).then((p) => p && { name: p.name, scopes: p.scopes });
      return {
        revokes,
        verified: [await principal(reader.token), await principal(ingest.token), await principal(`${reader.token.slice(0, -4)}AAAA`)],
        list: sortedBy((await store.list()).map((t) => ({ name: t.name, scopes: t.scopes, revoked: t.revoked }))),
      };
    });
    diffs.assertNone();
  });

  it('errors reach tally as errors on both: an unknown table, a value a column cannot hold', async () => {
    for (const s of sides) {
      await assert.rejects(queryRows(s.ch, `SELECT count() FROM ${identifier(db())}.no_such_table`), (err: Error & { code?: string }) =>
        (err.code ?? /Code: (\d+)/.exec(err.message)?.[1]) === '60', s.name);
      await assert.rejects(s.ch.insert({ table: `${identifier(db())}.reconciliations`, values: [{ ran_at: 0, periods: 'many' }], format: 'JSONEachRow' }), s.name);
    }
  });
});
