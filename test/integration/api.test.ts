/**
 * The REST API and HTTP ingest on the real stack: `tally api` as a child process, with an
 * aggregator and a sink, on a fresh sandbox. Events go in through POST /api/v1/impressions; the
 * counts endpoint must then equal the ground truth built here from what was sent (and ClickHouse
 * FINAL must equal it too, assertExact-style). Tokens and bad parameters: api-auth.test.ts; Kafka
 * or ClickHouse unreachable: api-outage.test.ts.
 */
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import type { CampaignsResponse, CountsResponse, IngestResponse } from '../../server/src/contracts/api-types.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { emptyDeadLetters, truthRowKey, type GroundTruth, type TruthRow } from '../../server/src/tools/index.js';
import { createSandbox, eventually, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { assertExact, Pipeline } from '../kit/pipeline.js';
import {
  type Answer, assertError, call, CAMPAIGNS, createTokens, type Event, eventMaker, runAdvertisers, startApi, type Tokens,
} from './api-fixtures.js';

describe('REST API and HTTP ingest (real Kafka + ClickHouse, tally api as a process)', function () {
  this.timeout(300_000);
  const WINDOW_MS = 60_000;
  const { P, ADV1, ADV2, ADV1_UPPER } = runAdvertisers();

  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess;
  let base: string;
  let ch: ClickHouseClient;
  let tok: Tokens;

  /** The ground truth: counted impressions per (window, advertiser, campaign), first copy wins. */
  const truth = new Map<string, TruthRow>();
  const counted = new Map<string, Event>();
  let duplicatesSent = 0;
  let sent = 0;
  const now0 = Date.now();
  const makeEvent = eventMaker(P, now0);

  /** Records an event the API accepted: counted once, later copies are duplicates. */
  function accepted(e: Event): void {
    sent++;
    if (counted.has(e.impression_id)) {
      duplicatesSent++;
      return;
    }
    counted.set(e.impression_id, e);
    const ts = typeof e.ts === 'number' ? e.ts : Date.parse(e.ts);
    const windowStart = Math.floor(ts / WINDOW_MS) * WINDOW_MS;
    const k = truthRowKey({ windowStart, advertiserId: e.advertiser_id, campaignId: e.campaign_id });
    const row = truth.get(k) ?? { windowStart, advertiserId: e.advertiser_id, campaignId: e.campaign_id, impressions: 0, spendMicros: 0 };
    row.impressions++;
    row.spendMicros += e.cost_micros ?? 0;
    truth.set(k, row);
  }

  const post = (token: string, body: string, type = 'application/json') => call<IngestResponse>(base, '/api/v1/impressions', { token, body, type });

  before(async () => {
    sb = await createSandbox('api', { TALLY_WINDOW_MS: String(WINDOW_MS) });
    ch = createClickHouse(sb.config);
    tok = await createTokens(TokenStore.forClickHouse(ch, sb.config.clickhouse.database), ADV1, ADV2);
    pipeline = new Pipeline(sb);
    pipeline.startAggregator();
    pipeline.startSink();
    ({ api, base } = await startApi(sb.env));
    await seedGroundTruth();
  });

  after(async () => {
    await Promise.all([api?.stop(), pipeline?.stopAll()]);
    await ch?.close();
    await sb?.cleanup();
  });

  it('health and readiness need no token; /metrics is open to loopback', async () => {
    assert.equal((await call(base, '/healthz')).status, 200);
    await eventually('/readyz 200', async () => (await call(base, '/readyz')).status === 200, 30_000);
    const m = await fetch(`${base}/metrics`);
    assert.equal(m.status, 200);
    assert.match(await m.text(), /tally_api_http_requests_total/);
  });

  /**
   * The ground truth every read test compares with, sent in `before` so that each test also runs
   * alone (mocha --grep): a JSON array, a mixed NDJSON batch, and a client's retry of acknowledged
   * events. The ingest tests assert on these answers.
   */
  const seeded: { array?: Answer<IngestResponse>; ndjson?: Answer<IngestResponse>; retry?: Answer<IngestResponse> } = {};
  const ndjsonBad: Array<[number, string, string]> = [];
  let ndjsonGood = 0;

  async function seedGroundTruth(): Promise<void> {
    const events: Event[] = [];
    for (let i = 0; i < 300; i++) events.push(makeEvent(i % 2 === 0 ? ADV1 : ADV2));
    // Some event times as ISO-8601 strings with a zone, as the contract allows.
    for (let i = 0; i < events.length; i += 10) events[i] = { ...events[i], ts: new Date(events[i].ts as number).toISOString() };
    seeded.array = await post(tok.ingest, JSON.stringify(events));
    if (seeded.array.status === 202) events.forEach(accepted);

    const good = Array.from({ length: 120 }, (_, i) => makeEvent(i % 3 === 0 ? ADV1_UPPER : i % 3 === 1 ? ADV1 : ADV2));
    const lines: string[] = good.map((e) => JSON.stringify(e));
    const bad: Array<[number, string, string]> = [
      [3, '{"impression_id": "x", broken', 'bad_json'],
      [10, '[1, 2]', 'not_object'],
      [20, JSON.stringify({ ts: now0, advertiser_id: ADV1, campaign_id: 'c' }), 'missing_field'],
      [30, JSON.stringify({ impression_id: 42, ts: now0, advertiser_id: ADV1, campaign_id: 'c' }), 'bad_type'],
      [40, JSON.stringify({ impression_id: 'has space', ts: now0, advertiser_id: ADV1, campaign_id: 'c' }), 'bad_id'],
      [50, JSON.stringify({ impression_id: `${P}z1`, ts: '2025-11-26T10:00:00', advertiser_id: ADV1, campaign_id: 'c' }), 'bad_timestamp'],
      [60, JSON.stringify({ impression_id: `${P}z2`, ts: now0, advertiser_id: ADV1, campaign_id: 'c', cost_micros: 1.5 }), 'bad_cost'],
      [70, JSON.stringify({ impression_id: `${P}z3`, ts: now0, advertiser_id: ADV1, campaign_id: 'c', pad: 'x'.repeat(17_000) }), 'too_large'],
      [80, JSON.stringify({ impression_id: `${P}z4`, ts: now0, advertiser_id: "adv'1", campaign_id: 'c' }), 'bad_id'],
      [90, JSON.stringify({ impression_id: `${P}z5`, ts: Date.now() + 3_600_000, advertiser_id: ADV1, campaign_id: 'c' }), 'future_timestamp'],
    ];
    for (const [index, line] of bad) lines.splice(index, 0, line);
    // Blank lines and CRLF are tolerated and not counted as events.
    const body = `${lines.join('\r\n')}\n\n`;
    seeded.ndjson = await post(tok.both, body, 'application/x-ndjson');
    ndjsonBad.push(...bad);
    ndjsonGood = good.length;
    if (seeded.ndjson.status === 202) good.forEach(accepted);

    const again = [...counted.values()].slice(0, 60);
    seeded.retry = await post(tok.ingest, JSON.stringify(again));
    if (seeded.retry.status === 202) again.forEach(accepted);
  }

  it('ingests a JSON array: 202 after the broker acknowledged every event', () => {
    const a = seeded.array as Answer<IngestResponse>;
    assert.equal(a.status, 202, JSON.stringify(a.body));
    assert.deepEqual(a.body, { accepted: 300, rejected: 0, errors: [] });
  });

  it('ingests a mixed NDJSON batch: valid events kept, each bad one named by index and contract reason', () => {
    const a = seeded.ndjson as Answer<IngestResponse>;
    assert.equal(a.status, 202, JSON.stringify(a.body).slice(0, 500));
    assert.equal(a.body.accepted, ndjsonGood);
    assert.equal(a.body.rejected, ndjsonBad.length);
    assert.deepEqual(a.body.errors.map((e) => [e.index, e.reason]), ndjsonBad.map(([i, , r]) => [i, r]));
    for (const e of a.body.errors) assert.ok(e.message.length > 0);
  });

  it('a batch with no valid event is a 400 listing every reason; nothing is produced', async () => {
    const a = await post(tok.ingest, JSON.stringify([{ nope: true }, 'text', { impression_id: `${P}q`, ts: -1, advertiser_id: ADV1, campaign_id: 'c' }]));
    assertError(a, 400);
    assert.deepEqual(a.body.errors.map((e) => [e.index, e.reason]), [[0, 'missing_field'], [1, 'not_object'], [2, 'bad_timestamp']]);
    assert.equal(a.body.accepted, 0);
    assert.equal(a.body.rejected, 3);
    assertError(await post(tok.ingest, '[]'), 400);
    assertError(await post(tok.ingest, '{"impression_id":"x"}'), 400);
    assertError(await post(tok.ingest, 'not json at all'), 400);
    assertError(await post(tok.ingest, '[]', 'text/csv'), 415);
  });

  it('a client retry of an acknowledged batch is counted once (duplicates removed downstream)', async () => {
    const a = seeded.retry as Answer<IngestResponse>;
    assert.equal(a.status, 202);
    assert.equal(a.body.accepted, 60);
    // Downstream: the 60 copies removed as duplicates, every impression counted once.
    const { from, to } = seededRange();
    let totals: unknown;
    await eventually('the retried events removed as duplicates', async () => {
      const all = await call<CountsResponse>(base, `/api/v1/counts?from=${from}&to=${to}&granularity=day`, { token: tok.admin });
      totals = all.body.totals;
      return all.body.totals.duplicates === 60 && all.body.totals.impressions === counted.size;
    }, 120_000, 1000).catch(() => assert.fail(`totals: ${JSON.stringify(totals)}`));
  });

  it('ingest limits: more than 10 000 events or 5 MB → 413', async () => {
    const many = `[${Array.from({ length: 10_001 }, () => '{}').join(',')}]`;
    assertError(await post(tok.ingest, many), 413);
    const big = JSON.stringify([{ impression_id: 'big', pad: 'x'.repeat(5 * 1024 * 1024) }]);
    assertError(await post(tok.ingest, big), 413);
  });

  /** From an hour before the oldest window sent to a minute from now: every seeded event. */
  function seededRange(): { from: number; to: number } {
    return { from: Math.min(...[...truth.values()].map((r) => r.windowStart)) - 3_600_000, to: Date.now() + 60_000 };
  }

  it('counts equal the ground truth exactly, per window, hour and day, and ClickHouse FINAL agrees', async () => {
    const expected = [...truth.values()];
    const { from, to } = seededRange();
    const expectedFor = (adv: string) => expected.filter((r) => r.advertiserId === adv)
      .sort((a, b) => a.windowStart - b.windowStart || (a.campaignId < b.campaignId ? -1 : 1))
      .map((r) => ({ periodStart: r.windowStart, periodEnd: r.windowStart + WINDOW_MS, advertiserId: adv, campaignId: r.campaignId, impressions: r.impressions, spendMicros: r.spendMicros }));

    let last: unknown;
    await eventually('counts per window = ground truth', async () => {
      for (const [adv, token] of [[ADV1, tok.adv1], [ADV2, tok.adv2], [ADV1_UPPER, tok.admin]] as const) {
        const a = await call<CountsResponse>(base, `/api/v1/counts?advertiser_id=${adv}&from=${from}&to=${to}&granularity=window`, { token });
        assert.equal(a.status, 200, JSON.stringify(a.body));
        // Every row says how settled it is: these hours are live or provisional (none can be final yet).
        for (const r of a.body.rows) assert.ok(r.maturity === 'live' || r.maturity === 'provisional', JSON.stringify(r));
        const actual = a.body.rows.map(({ duplicates: _d, maturity: _m, ...r }) => r);
        last = { adv, actual: actual.length, expected: expectedFor(adv).length };
        if (JSON.stringify(actual) !== JSON.stringify(expectedFor(adv))) return false;
      }
      return true;
    }, 120_000, 1000).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${JSON.stringify(last)}\n${pipeline.logs()}`);
    });

    // Exact totals at every granularity, the same from the advertiser's token and from admin.
    const sum = (adv: string) => expected.filter((r) => r.advertiserId === adv).reduce(
      (t, r) => ({ impressions: t.impressions + r.impressions, spendMicros: t.spendMicros + r.spendMicros }), { impressions: 0, spendMicros: 0 });
    for (const granularity of ['window', 'hour', 'day']) {
      for (const [adv, token] of [[ADV1, tok.adv1], [ADV2, tok.both], [ADV1_UPPER, tok.admin]] as const) {
        const a = await call<CountsResponse>(base, `/api/v1/counts?advertiser_id=${adv}&from=${new Date(from).toISOString()}&to=${to}&granularity=${granularity}`, { token });
        assert.equal(a.status, 200);
        const { duplicates: _d, maturity, ...totals } = a.body.totals;
        assert.deepEqual(totals, sum(adv), `${adv} ${granularity}`);
        assert.ok(maturity === 'live' || maturity === 'provisional', `${adv} ${granularity}: ${maturity}`);
        assert.equal(a.body.rows.reduce((s, r) => s + r.impressions, 0), sum(adv).impressions);
        for (const r of a.body.rows) assert.equal(r.advertiserId, adv, 'ids are never normalized: ADV-1 and adv-1 stay apart');
      }
    }
    const all = await call<CountsResponse>(base, `/api/v1/counts?from=${from}&to=${to}&granularity=day`, { token: tok.admin });
    assert.equal(all.body.totals.impressions, counted.size);
    assert.equal(all.body.totals.duplicates, duplicatesSent, 'the retried batch shows up as duplicates removed');

    // One campaign only.
    const one = await call<CountsResponse>(base, `/api/v1/counts?advertiser_id=${ADV1}&campaign_id=cmp-b&from=${from}&to=${to}`, { token: tok.adv1 });
    assert.equal(one.body.totals.impressions, expected.filter((r) => r.advertiserId === ADV1 && r.campaignId === 'cmp-b').reduce((s, r) => s + r.impressions, 0));

    // ClickHouse FINAL equals the same ground truth (and the DLQ is empty: ingest produced only valid events).
    const gt: GroundTruth = {
      windowMs: WINDOW_MS,
      idPrefix: P,
      generatedAt: new Date(now0).toISOString(),
      counts: { sent, valid: sent, unique: counted.size, duplicatesSent, lateWithinHorizon: 0 },
      deadLetters: emptyDeadLetters(),
      rows: expected.sort((a, b) => a.windowStart - b.windowStart || (a.advertiserId < b.advertiserId ? -1 : a.advertiserId > b.advertiserId ? 1 : a.campaignId < b.campaignId ? -1 : 1)),
      phases: [],
    };
    await assertExact(pipeline, gt, { timeoutMs: 60_000 });
  });

  it('campaigns and advertisers: totals per campaign, limited to what the token may read', async () => {
    const expected = CAMPAIGNS.map((cmp) => [
      ADV1, cmp, [...truth.values()].filter((r) => r.advertiserId === ADV1 && r.campaignId === cmp).reduce((s, r) => s + r.impressions, 0),
    ]);
    let shown: unknown;
    // The seeded events reach ClickHouse a moment after their 202.
    await eventually('campaigns to show the seeded events', async () => {
      const c = await call<CampaignsResponse>(base, `/api/v1/campaigns?advertiser_id=${ADV1}`, { token: tok.adv1 });
      assert.equal(c.status, 200);
      shown = c.body.campaigns.map((x) => [x.advertiserId, x.campaignId, x.impressions]);
      const all = await call<{ advertisers: Array<{ impressions: number }> }>(base, '/api/v1/advertisers', { token: tok.admin });
      return JSON.stringify(shown) === JSON.stringify(expected) && all.body.advertisers.reduce((t, a) => t + a.impressions, 0) === counted.size;
    }, 60_000, 250).catch((err: Error) => assert.fail(`${err.message}: ${JSON.stringify(shown)}`));
    const mine = await call<CampaignsResponse>(base, '/api/v1/campaigns', { token: tok.adv2 });
    assert.ok(mine.body.campaigns.length > 0 && mine.body.campaigns.every((x) => x.advertiserId === ADV2));
    const advs = await call<{ advertisers: Array<{ advertiserId: string; impressions: number }> }>(base, '/api/v1/advertisers', { token: tok.admin });
    assert.deepEqual(advs.body.advertisers.map((a) => a.advertiserId).sort(), [ADV1, ADV2, ADV1_UPPER].sort());
    assert.equal(advs.body.advertisers.reduce((s, a) => s + a.impressions, 0), counted.size);
    const own = await call<{ advertisers: Array<{ advertiserId: string }> }>(base, '/api/v1/advertisers', { token: tok.adv1 });
    assert.deepEqual(own.body.advertisers.map((a) => a.advertiserId), [ADV1]);
  });

  it('billing export is mounted behind the same tokens: own advertiser 200, another 403, no read scope 403', async () => {
    const day = 86_400_000;
    const from = Math.floor((now0 - 3_600_000) / day) * day;
    const q = (adv: string) => `/api/v1/billing/export?advertiser_id=${adv}&from=${from}&to=${from + 2 * day}&format=json`;
    const res = await fetch(base + q(ADV1), { headers: { authorization: `Bearer ${tok.adv1}` } });
    assert.equal(res.status, 200, await res.clone().text());
    assert.match(res.headers.get('content-type') ?? '', /json/);
    await res.arrayBuffer();
    assertError(await call(base, q(ADV2), { token: tok.adv1 }), 403, undefined, 'billing other advertiser');
    assertError(await call(base, q(ADV1), { token: tok.ingest }), 403, undefined, 'billing ingest token');
    assertError(await call(base, q(ADV1)), 401, undefined, 'billing no token');
    assertError(await call(base, `/api/v1/billing/export?advertiser_id=${encodeURIComponent("a' OR 1=1")}`, { token: tok.admin }), 400, 'advertiser_id', 'billing bad id');
  });

  it('pipeline status for admin (from the live feed)', async () => {
    await eventually('pipeline status', async () => (await call(base, '/api/v1/pipeline', { token: tok.admin })).status === 200, 60_000);
    const a = await call<{ partitions: unknown[]; serverTime: number }>(base, '/api/v1/pipeline', { token: tok.admin });
    assert.equal(a.body.partitions.length, sb.config.partitions);
  });
});
