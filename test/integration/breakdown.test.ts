/**
 * Breakdowns end to end on the real stack: events with known dimension values go in through HTTP
 * ingest (with duplicates, missing and unusable values), the aggregator counts them exactly once per
 * value, the sink writes impression_breakdowns, and GET /api/v1/breakdown must equal the truth built
 * here, sum to the campaign totals, and have the totals /counts has for the same filter. The value
 * limit is 8 here: one campaign gets exactly 8 creatives in one window and partition (no `other`),
 * another more (the 9th value sent and later new ones are `other`). Access rules and bad parameters are checked on the same data.
 */
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import type {
  BreakdownResponse, CountsResponse, DimensionsResponse, IngestResponse,
} from '../../server/src/contracts/api-types.js';
import { dimensionValueOf, type Dimension } from '../../server/src/contracts/dimensions.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { homePartition } from '../../server/src/impression/index.js';
import { createSandbox, eventually, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';
import { assertError, call, createTokens, runAdvertisers, startApi, type Tokens } from './api-fixtures.js';

type Body = Record<string, unknown> & { impression_id: string; ts: number; advertiser_id: string; campaign_id: string; cost_micros: number };

const DIMS: Dimension[] = ['creative_id', 'country', 'device'];
const PARTITIONS = 4;
/** Above the distinct values the random events can give one row (6 per dimension), so only the limit campaigns fold. */
const LIMIT = 8;

describe('breakdowns by dimension (real Kafka + ClickHouse, HTTP ingest, tally api)', function () {
  this.timeout(300_000);
  const WINDOW_MS = 60_000;
  const { P, ADV1, ADV2 } = runAdvertisers();
  const now0 = Date.now();
  // A window well inside the dedup horizon, closed or not: every event of the limit campaigns lands in it.
  const limitTs = Math.floor((now0 - 120_000) / WINDOW_MS) * WINDOW_MS + 1_000;
  const from = now0 - 3_600_000;
  const to = now0 + 600_000;

  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess;
  let base: string;
  let ch: ClickHouseClient;
  let tok: Tokens;

  /** Counted events (first copy of each id). */
  const counted = new Map<string, Body>();

  /** The truth of one advertiser/dimension (optionally one campaign): value → [impressions, spend]. */
  function truthOf(adv: string, dimension: Dimension, campaign?: string): Map<string, [number, bigint]> {
    const out = new Map<string, [number, bigint]>();
    for (const e of counted.values()) {
      if (e.advertiser_id !== adv || (campaign !== undefined && e.campaign_id !== campaign)) continue;
      const v = dimensionValueOf(e[dimension]);
      const [n, s] = out.get(v) ?? [0, 0n];
      out.set(v, [n + 1, s + BigInt(e.cost_micros)]);
    }
    return out;
  }

  const answerOf = (b: BreakdownResponse) => new Map(b.rows.map((r) => [r.value, [r.impressions, BigInt(r.spendMicros)] as [number, bigint]]));

  const breakdown = (token: string, params: string) => call<BreakdownResponse>(base, `/api/v1/breakdown?${params}`, { token });
  const range = `from=${from}&to=${to}`;

  /** Ids of this run whose home partition is `p` (so they are read, in order, by one task). */
  function idsHomeAt(p: number, prefix: string, n: number): string[] {
    const ids: string[] = [];
    for (let i = 0; ids.length < n; i++) if (homePartition(`${prefix}${i}`, PARTITIONS) === p) ids.push(`${prefix}${i}`);
    return ids;
  }

  before(async () => {
    sb = await createSandbox('breakdown', {
      TALLY_WINDOW_MS: String(WINDOW_MS), TALLY_PARTITIONS: String(PARTITIONS),
      TALLY_DIMENSIONS: DIMS.join(','), TALLY_DIMENSION_LIMIT: String(LIMIT),
    });
    ch = createClickHouse(sb.config);
    tok = await createTokens(TokenStore.forClickHouse(ch, sb.config.clickhouse.database), ADV1, ADV2);
    pipeline = new Pipeline(sb);
    pipeline.startAggregator();
    pipeline.startSink();
    ({ api, base } = await startApi(sb.env));

    const events: Body[] = [];
    const creatives = ['cr-1', 'cr-2', 'cr-3', 'cr-4', 'cr-5'];
    const countries = ['DE', 'FR', 'US', 'Österreich', '', 'x'.repeat(129)];
    for (let i = 0; i < 240; i++) {
      const e: Body = {
        impression_id: `${P}e-${i}`, ts: now0 - Math.floor(Math.random() * 600_000), advertiser_id: i % 3 === 0 ? ADV2 : ADV1,
        campaign_id: `cmp-${i % 2}`, cost_micros: (i * 7919) % 100_000,
      };
      if (i % 5 !== 0) e.creative_id = creatives[i % creatives.length];
      if (i % 4 !== 0) e.country = countries[i % countries.length];
      e.device = i % 9 === 0 ? 42 : ['mobile', 'desktop', 'ctv'][i % 3];
      e.publisher_id = `pub-${i % 11}`; // not configured here: ignored
      events.push(e);
    }
    // The limit: 8 creatives of one campaign in one window and partition stay named; a 9th is `other`.
    idsHomeAt(1, `${P}at-`, LIMIT).forEach((id, i) => events.push({
      impression_id: id, ts: limitTs, advertiser_id: ADV1, campaign_id: 'cmp-at-limit', cost_micros: 10 + i, creative_id: `cr-${i}`,
    }));
    const overLimit = ['cr-0', 'cr-1', 'cr-2', 'cr-3', 'cr-4', 'cr-5', 'cr-6', 'cr-7', 'cr-8', 'cr-8', 'cr-2', 'cr-13'];
    idsHomeAt(2, `${P}over-`, overLimit.length).forEach((id, i) => events.push({
      impression_id: id, ts: limitTs, advertiser_id: ADV1, campaign_id: 'cmp-over-limit', cost_micros: 100 + i, creative_id: overLimit[i],
    }));
    for (const e of events) if (!counted.has(e.impression_id)) counted.set(e.impression_id, e);
    // Copies of acknowledged events, some with other dimension values: duplicates, counted nowhere.
    const copies = events.slice(0, 40).map((e) => ({ ...e, country: 'ZZ', creative_id: 'cr-copy' }));
    for (const batch of [events, copies]) {
      const r = await call<IngestResponse>(base, '/api/v1/impressions', { token: tok.ingest, body: JSON.stringify(batch), type: 'application/json' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.accepted, batch.length, JSON.stringify(r.body.errors));
    }
    const expected = counted.size;
    await eventually('every event counted and broken down', async () => {
      const [c1, c2] = await Promise.all([ADV1, ADV2].map((a) => call<CountsResponse>(base, `/api/v1/counts?advertiser_id=${a}&${range}`, { token: tok.admin })));
      const b = await Promise.all([ADV1, ADV2].map((a) => breakdown(tok.admin, `dimension=device&advertiser_id=${a}&${range}`)));
      return c1.body.totals.impressions + c2.body.totals.impressions === expected
        && b[0].body.totals.impressions + b[1].body.totals.impressions === expected;
    }, 120_000, 500);
  });

  after(async () => {
    await Promise.all([api?.stop(), pipeline?.stopAll()]);
    await ch?.close();
    await sb?.cleanup();
  });

  it('each configured dimension equals the truth per value, and sums to the /counts totals (impressions and micros)', async () => {
    for (const adv of [ADV1, ADV2]) {
      const counts = (await call<CountsResponse>(base, `/api/v1/counts?advertiser_id=${adv}&${range}`, { token: tok.admin })).body;
      for (const d of DIMS) {
        const b = (await breakdown(tok.admin, `dimension=${d}&advertiser_id=${adv}&${range}`)).body;
        if (adv === ADV1 && d === 'creative_id') continue; // the over-limit campaign folds values: checked below
        assert.deepEqual(answerOf(b), truthOf(adv, d), `${adv} ${d}`);
        assert.equal(b.totals.impressions, counts.totals.impressions, `${adv} ${d} impressions`);
        assert.equal(BigInt(b.totals.spendMicros), BigInt(counts.totals.spendMicros), `${adv} ${d} spend`);
      }
    }
  });

  it('unknown holds absent, non-string, empty and over-long values', async () => {
    const b = answerOf((await breakdown(tok.admin, `dimension=country&${range}`)).body);
    assert.ok((b.get('unknown')?.[0] ?? 0) > 0, 'no unknown bucket');
    assert.equal(b.get('x'.repeat(129)), undefined);
    assert.ok(b.has('Österreich'));
  });

  it('`other` appears exactly past the limit: 8 values stay named, the 9th and later new ones fold into it, counted exactly', async () => {
    const at = (await breakdown(tok.adv1, `dimension=creative_id&advertiser_id=${ADV1}&campaign_id=cmp-at-limit&${range}`)).body;
    assert.deepEqual(answerOf(at), truthOf(ADV1, 'creative_id', 'cmp-at-limit'));
    assert.equal(at.rows.some((r) => r.value === 'other'), false);
    const over = answerOf((await breakdown(tok.adv1, `dimension=creative_id&advertiser_id=${ADV1}&campaign_id=cmp-over-limit&${range}`)).body);
    const truth = truthOf(ADV1, 'creative_id', 'cmp-over-limit');
    // Sent in this order to one partition: cr-0 … cr-7 named (cr-2 again stays named); cr-8 (twice) and cr-13 fold.
    const named = ['cr-0', 'cr-1', 'cr-2', 'cr-3', 'cr-4', 'cr-5', 'cr-6', 'cr-7'];
    assert.deepEqual([...over.keys()].sort(), [...named, 'other'].sort());
    for (const v of named) assert.deepEqual(over.get(v), truth.get(v), v);
    let n = 0;
    let s = 0n;
    for (const [v, [i, sp]] of truth) {
      if (named.includes(v)) continue;
      n += i;
      s += sp;
    }
    assert.deepEqual(over.get('other'), [n, s]);
  });

  it('by window: the rows of each window equal /counts\' window rows summed over campaigns', async () => {
    const b = (await breakdown(tok.adv2, `dimension=device&advertiser_id=${ADV2}&${range}&granularity=window`)).body;
    const c = (await call<CountsResponse>(base, `/api/v1/counts?advertiser_id=${ADV2}&${range}&granularity=window`, { token: tok.adv2 })).body;
    const perWindow = (rows: Array<{ periodStart: number; impressions: number }>) => {
      const m = new Map<number, number>();
      for (const r of rows) m.set(r.periodStart, (m.get(r.periodStart) ?? 0) + r.impressions);
      return m;
    };
    assert.deepEqual(perWindow(b.rows), perWindow(c.rows));
    assert.ok(b.rows.every((r) => r.periodEnd - r.periodStart === WINDOW_MS && ['live', 'provisional', 'final'].includes(r.maturity)));
  });

  it('an advertiser sees only its own breakdowns; only an admin may ask for every advertiser', async () => {
    assertError(await breakdown(tok.adv2, `dimension=country&advertiser_id=${ADV1}&${range}`), 403, undefined, 'other advertiser');
    assertError(await breakdown(tok.adv2, `dimension=country&${range}`), 400, 'advertiser_id', 'no advertiser');
    const all = (await breakdown(tok.admin, `dimension=device&${range}`)).body;
    assert.ok(all.totals.impressions >= counted.size);
  });

  it('bad parameters get a 400 naming the parameter', async () => {
    const q = `advertiser_id=${ADV1}&${range}`;
    assertError(await breakdown(tok.adv1, q), 400, 'dimension', 'missing');
    assertError(await breakdown(tok.adv1, `dimension=browser&${q}`), 400, 'dimension', 'not a dimension');
    assertError(await breakdown(tok.adv1, `dimension=publisher_id&${q}`), 400, 'dimension', 'not configured');
    assertError(await breakdown(tok.adv1, `dimension=country&dimension=device&${q}`), 400, 'dimension', 'repeated');
    assertError(await breakdown(tok.adv1, `dimension=country&${q}&granularity=week`), 400, 'granularity', 'granularity');
    assertError(await breakdown(tok.adv1, `dimension=country&advertiser_id=${ADV1}&from=${to}&to=${from}`), 400, 'from', 'reversed range');
    assertError(await breakdown(tok.adv1, `dimension=country&advertiser_id=${ADV1}'--&${range}`), 400, 'advertiser_id', 'injection');
  });

  it('/dimensions lists what is counted', async () => {
    const d = (await call<DimensionsResponse>(base, '/api/v1/dimensions', { token: tok.adv1 })).body;
    assert.deepEqual(d, { dimensions: DIMS, valueLimit: LIMIT, unknownValue: 'unknown', otherValue: 'other' });
  });
});
