/**
 * The express app around fakes (api-app-fixtures.ts): status codes, error shapes, scopes,
 * timeouts. The real-stack version is test/integration/api.test.ts.
 */
import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import zlib from 'node:zlib';
import { type Harness, start, call, assertError, event } from './api-app-fixtures.js';

describe('API app (fakes)', () => {
  let h: Harness;
  before(async () => {
    h = await start();
  });
  after(async () => h.close());

  it('health, readiness, security headers, no x-powered-by', async () => {
    const hz = await call(h.base, '/healthz');
    assert.equal(hz.status, 200);
    assert.equal(hz.headers.get('x-powered-by'), null);
    assert.equal(hz.headers.get('x-content-type-options'), 'nosniff');
    const csp = hz.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.doesNotMatch(csp, /upgrade-insecure-requests/);
    assert.equal((await call(h.base, '/readyz')).status, 200);
    h.ready = { ready: false, kafka: false, clickhouse: true };
    const nr = await call(h.base, '/readyz');
    assert.equal(nr.status, 503);
    assert.deepEqual(nr.body, { status: 'not_ready', kafka: false, clickhouse: true, liveFeed: false });
    h.ready = { ready: true, kafka: true, clickhouse: true };
  });

  it('401 without or with a bad token (JSON, WWW-Authenticate); 503 when tokens cannot be checked', async () => {
    for (const opts of [{}, { token: 'nope' }, { headers: { authorization: 'Basic YTpi' } }, { headers: { authorization: 'Bearer' } }]) {
      const a = await call(h.base, '/api/v1/me', opts);
      assertError(a, 401);
      assert.match(a.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    assertError(await call(h.base, '/api/v1/nothing-here'), 401);
    h.verifier.down = true;
    const a = await call(h.base, '/api/v1/me', { token: 'admin' });
    h.verifier.down = false;
    assertError(a, 503);
    assert.ok(a.headers.get('retry-after'));
  });

  it('/me describes the token', async () => {
    assert.deepEqual((await call(h.base, '/api/v1/me', { token: 'adv12' })).body, { name: 'adv12', admin: false, ingest: false, advertisers: ['adv-1', 'adv-2'] });
    const admin = await call(h.base, '/api/v1/me', { token: 'admin' });
    assert.deepEqual(admin.body, { name: 'admin', admin: true, ingest: true, advertisers: null });
    assert.equal(admin.headers.get('cache-control'), 'no-store');
  });

  it('403 for the wrong scope, before any query runs', async () => {
    h.ch.queries = [];
    for (const path of ['/api/v1/counts?advertiser_id=adv-1', '/api/v1/campaigns', '/api/v1/advertisers', '/api/v1/pipeline']) {
      assertError(await call(h.base, path, { token: 'ingest' }), 403);
    }
    for (const adv of ['adv-2', 'ADV-1', 'adv-01', 'Adv-1', 'adv-1.', 'adv-10']) {
      assertError(await call(h.base, `/api/v1/counts?advertiser_id=${adv}`, { token: 'adv1' }), 403);
      assertError(await call(h.base, `/api/v1/campaigns?advertiser_id=${adv}`, { token: 'adv1' }), 403);
    }
    assertError(await call(h.base, '/api/v1/pipeline', { token: 'adv1' }), 403);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'adv1', body: JSON.stringify([event('i')]), type: 'application/json' }), 403);
    assert.deepEqual(h.ch.queries, []);
  });

  it('400 naming the parameter; injection-shaped values never reach ClickHouse', async () => {
    h.ch.queries = [];
    const cases: Array<[string, string]> = [
      ['advertiser_id=adv-1&from=yesterday', 'from'],
      ['advertiser_id=adv-1&to=2025-11-26T10:00:00', 'to'],
      ['advertiser_id=adv-1&from=2000&to=1000', 'from'],
      ['advertiser_id=adv-1&from=0&to=8035200001', 'to'],
      ['advertiser_id=adv-1&granularity=minute', 'granularity'],
      ["advertiser_id=adv-1'", 'advertiser_id'],
      ["advertiser_id=adv-1'%20OR%20'1'%3D'1", 'advertiser_id'],
      ['advertiser_id=adv-1%20--%20x', 'advertiser_id'],
      ['advertiser_id=adv/**/1', 'advertiser_id'],
      ['advertiser_id=adv-1%00', 'advertiser_id'],
      ['advertiser_id=%20adv-1', 'advertiser_id'],
      ['advertiser_id=adv-1&advertiser_id=adv-2', 'advertiser_id'],
      ['advertiser_id[x]=1&advertiser_id=adv-1%27', 'advertiser_id'],
      ['advertiser_id=adv-1&campaign_id=%22%3B', 'campaign_id'],
      ['advertiser_id=%FF%FE', 'advertiser_id'],
    ];
    for (const [qs, parameter] of cases) {
      const a = await call(h.base, `/api/v1/counts?${qs}`, { token: 'admin' });
      assert.equal(a.status, 400, qs);
      assertError(a, 400, parameter);
    }
    assertError(await call(h.base, '/api/v1/counts', { token: 'adv1' }), 400, 'advertiser_id');
    assertError(await call(h.base, "/api/v1/campaigns?advertiser_id=x'", { token: 'admin' }), 400, 'advertiser_id');
    assert.deepEqual(h.ch.queries, []);
  });

  it('counts: the query carries the validated values; the answer has the api-types shape, with maturity', async () => {
    h.ch.queries = [];
    h.ch.rows = [
      { period_s: 1764147600, advertiser_id: 'adv-1', campaign_id: 'c', impressions: '3', spend_micros: '30', duplicates: '1' },
      { period_s: 1764151200, advertiser_id: 'adv-1', campaign_id: 'c', impressions: '1', spend_micros: '9007199254740993', duplicates: '0' },
    ];
    // Every partition closed the hour starting 1764147600; watermarks are a minute into the next one.
    h.ch.frontier = Array.from({ length: 8 }, (_, p) => [
      { kind: 'close', p, v: 1764147600 }, { kind: 'watermark', p, v: 1764151260000 },
    ]).flat();
    try {
      const a = await call(h.base, '/api/v1/counts?advertiser_id=adv-1&from=2025-11-26T00:00:00Z&to=2025-11-27T00:00:00Z&granularity=hour&unknown=1', { token: 'adv1' });
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.deepEqual(a.body, {
        advertiserId: 'adv-1', campaignId: null, from: Date.UTC(2025, 10, 26), to: Date.UTC(2025, 10, 27), granularity: 'hour',
        rows: [
          { periodStart: 1764147600000, periodEnd: 1764151200000, advertiserId: 'adv-1', campaignId: 'c', impressions: 3, spendMicros: 30, duplicates: 1, maturity: 'final' },
          { periodStart: 1764151200000, periodEnd: 1764154800000, advertiserId: 'adv-1', campaignId: 'c', impressions: 1, spendMicros: '9007199254740993', duplicates: 0, maturity: 'live' },
        ],
        totals: { impressions: 4, spendMicros: '9007199254741023', duplicates: 1, maturity: 'live' },
      });
      assert.equal(h.ch.queries.length, 2, 'the ledger frontier, then the rows');
      assert.match(h.ch.queries[1], /advertiser_id = 'adv-1'/);
      assert.match(h.ch.queries[1], /billing_ledger .*period_start < toDateTime\(1764151200\)/, 'final hours from the ledger');
      assert.match(h.ch.queries[1], /impression_counts FINAL .*window_start >= toDateTime\(1764151200\)/, 'the rest from the window rows');
    } finally {
      h.ch.rows = [];
      h.ch.frontier = [];
    }
  });

  it('campaigns/advertisers of an advertiser token are limited to its advertisers', async () => {
    h.ch.queries = [];
    assert.equal((await call(h.base, '/api/v1/campaigns', { token: 'adv12' })).status, 200);
    assert.match(h.ch.queries[0], /advertiser_id IN \('adv-1', 'adv-2'\)/);
    const adv = await call(h.base, '/api/v1/advertisers', { token: 'adv12' });
    assert.deepEqual(adv.body, { advertisers: [
      { advertiserId: 'adv-1', campaigns: 0, impressions: 0, spendMicros: 0 },
      { advertiserId: 'adv-2', campaigns: 0, impressions: 0, spendMicros: 0 },
    ] });
    assert.match(h.ch.queries[1], /advertiser_id IN \('adv-1', 'adv-2'\)/);
    assert.equal((await call(h.base, '/api/v1/advertisers', { token: 'admin' })).status, 200);
    assert.match(h.ch.queries[2], /WHERE 1 /);
  });

  it('ClickHouse down → 503 with Retry-After; a real fault → 500 without internals', async () => {
    h.ch.mode = 'down';
    const down = await call(h.base, '/api/v1/counts?advertiser_id=adv-1', { token: 'admin' });
    h.ch.mode = 'bug';
    const bug = await call(h.base, '/api/v1/counts?advertiser_id=adv-1', { token: 'admin' });
    h.ch.mode = 'ok';
    assertError(down, 503);
    assert.ok(down.headers.get('retry-after'));
    assertError(bug, 500);
    assert.doesNotMatch(JSON.stringify(bug.body), /secret internals/);
  });

  it('ingest: JSON array and NDJSON, per-index errors, 202 only after the sink took the events', async () => {
    h.sink.records = [];
    const a = await call(h.base, '/api/v1/impressions', {
      token: 'ingest', type: 'application/json', body: JSON.stringify([event('i-1'), { nope: 1 }, event('i-2')]),
    });
    assert.equal(a.status, 202, JSON.stringify(a.body));
    assert.deepEqual(a.body, { accepted: 2, rejected: 1, errors: [{ index: 1, reason: 'missing_field', message: 'impression_id is missing' }] });
    assert.deepEqual(h.sink.records.map((r) => r.key), ['i-1', 'i-2']);
    assert.equal(h.sink.records[0].value?.toString(), JSON.stringify(event('i-1')));

    const nd = await call(h.base, '/api/v1/impressions', {
      token: 'admin', type: 'application/x-ndjson', body: `${JSON.stringify(event('i-3'))}\n{bad\n\n${JSON.stringify(event('i-4'))}\n`,
    });
    assert.equal(nd.status, 202);
    assert.deepEqual(nd.body, { accepted: 2, rejected: 1, errors: [{ index: 1, reason: 'bad_json', message: 'value is not valid JSON' }] });

    const gz = await call(h.base, '/api/v1/impressions', {
      token: 'ingest', type: 'application/json', body: zlib.gzipSync(JSON.stringify([event('i-5')])), headers: { 'content-encoding': 'gzip' },
    });
    assert.equal(gz.status, 202);
  });

  it('ingest: 400 when nothing is valid (with errors[]), bad bodies, 413, 415', async () => {
    const none = await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: '[1, {"impression_id": 5}]' });
    assertError(none, 400);
    assert.deepEqual(none.body.errors, [
      { index: 0, reason: 'not_object', message: 'value is JSON number, not an object' },
      { index: 1, reason: 'bad_type', message: 'impression_id must be a string, got number' },
    ]);
    assert.equal(none.body.accepted, 0);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: '{"impression_id":"x"}' }), 400);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: '[' }), 400);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: '[]' }), 400);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: Buffer.from([0x5b, 0xff, 0x5d]) }), 400);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', method: 'POST' }), 400);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'text/plain', body: '[]' }), 415);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: `[${'1,'.repeat(10_000)}1]` }), 413);
    assertError(await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: `["${'x'.repeat(5 * 1024 * 1024)}"]` }), 413);
  });

  it('ingest: bombs and huge tokens are refused with a 4xx at once, and never hold the event loop', async () => {
    const MB5 = 5 * 1024 * 1024;
    const keys: string[] = [];
    for (let i = 0; keys.length * 12 < MB5 - 100; i++) keys.push(`"k${i}":1`);
    const bodies: Array<{ name: string; body: string | Buffer; encoding?: string; status: number; message: RegExp }> = [
      { name: 'gzip bomb', body: zlib.gzipSync(Buffer.alloc(MB5 - 1, '['), { level: 9 }), encoding: 'gzip', status: 413, message: /inflates more than 100 times its size/ },
      { name: 'br bomb', body: zlib.brotliCompressSync(Buffer.alloc(MB5 - 1, '{')), encoding: 'br', status: 413, message: /inflates more than 100 times its size/ },
      { name: 'depth bomb', body: `${'['.repeat(2_500_000)}${']'.repeat(2_500_000)}`, status: 400, message: /nesting deeper than 32 levels/ },
      { name: '5 MB number', body: `[${'1'.repeat(MB5 - 2)}]`, status: 400, message: /a number or literal longer than 64 characters/ },
      { name: '5 MB object with many keys', body: `[{${keys.join(',')}}]`, status: 400, message: /no valid events/ },
      { name: 'compress', body: 'x', encoding: 'compress', status: 415, message: /unsupported content encoding "compress"/ },
    ];
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    for (const b of bodies) {
      const t0 = performance.now();
      const a = await call(h.base, '/api/v1/impressions', {
        token: 'ingest', type: 'application/json', body: b.body, headers: b.encoding === undefined ? {} : { 'content-encoding': b.encoding },
      });
      assertError(a, b.status);
      assert.match((a.body.error as { message: string }).message, b.message, b.name);
      assert.ok(performance.now() - t0 < 1000, `${b.name}: answered in ${performance.now() - t0} ms`);
      if (b.name.includes('many keys')) {
        assert.deepEqual((a.body.errors as Array<{ index: number; reason: string }>).map((e) => [e.index, e.reason]), [[0, 'too_large']], 'refused by size, never parsed');
      }
    }
    delay.disable();
    // The JSON.parse of the whole body took 0.3–1.7 s for these; sliced, no stretch is more than a few ms.
    assert.ok(delay.max / 1e6 < 250, `the event loop was held for ${(delay.max / 1e6).toFixed(0)} ms`);
  });

  it('ingest: an ingest:<id> token ingests that advertiser\'s events only; others refused per event, 403 when that is all', async () => {
    h.sink.records = [];
    const post = (body: string, token = 'ingestA', type = 'application/json') => call(h.base, '/api/v1/impressions', { token, type, body });
    const notAllowed = (index: number, adv: string) => ({ index, reason: 'advertiser_not_allowed', message: `this token may not ingest events of advertiser "${adv}"` });

    const ok = await post(JSON.stringify([event('s-1'), event('s-2')]));
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, { accepted: 2, rejected: 0, errors: [] });

    const denied = await post(JSON.stringify([event('s-3', 'adv-2'), event('s-4', 'adv-3'), event('s-4b', 'adv-2')]));
    assertError(denied, 403);
    assert.equal((denied.body.error as { message: string }).message,
      'this token may not ingest events of advertisers "adv-2", "adv-3"; it may ingest advertiser "adv-1" only');
    assert.deepEqual(denied.body.errors, [notAllowed(0, 'adv-2'), notAllowed(1, 'adv-3'), notAllowed(2, 'adv-2')]);
    assert.equal(denied.body.accepted, 0);
    assertError(await post(`${JSON.stringify(event('s-3', 'adv-2'))}\n`, 'ingestA', 'application/x-ndjson'), 403);

    const mixed = await post(JSON.stringify([event('s-5'), event('s-6', 'adv-2')]));
    assert.equal(mixed.status, 202);
    assert.deepEqual(mixed.body, { accepted: 1, rejected: 1, errors: [notAllowed(1, 'adv-2')] });

    // Refused for another reason too: the usual 400.
    const invalid = await post(JSON.stringify([{ nope: 1 }, event('s-7', 'adv-2')]));
    assertError(invalid, 400);
    assert.deepEqual((invalid.body.errors as Array<{ reason: string }>).map((e) => e.reason), ['missing_field', 'advertiser_not_allowed']);

    assert.deepEqual(h.sink.records.map((r) => r.key), ['s-1', 's-2', 's-5'], 'nothing of another advertiser was produced');
    // An `ingest` token (an ad server) and admin ingest any advertiser.
    assert.equal((await post(JSON.stringify([event('s-8', 'adv-2')]), 'ingest')).status, 202);
    assert.equal((await post(JSON.stringify([event('s-9', 'adv-3')]), 'admin')).status, 202);
    assert.deepEqual((await call(h.base, '/api/v1/me', { token: 'ingestA' })).body, { name: 'ingestA', admin: false, ingest: true, advertisers: [] });
    assertError(await call(h.base, '/api/v1/counts?advertiser_id=adv-1', { token: 'ingestA' }), 403);
  });

  it('ingest: Kafka not acknowledging → 503 with Retry-After', async () => {
    h.sink.mode = 'down';
    const a = await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: JSON.stringify([event('i-9')]) });
    h.sink.mode = 'ok';
    assertError(a, 503);
    assert.equal(a.headers.get('retry-after'), '5');
  });

  it('a request that takes too long gets a 503', async () => {
    h.sink.mode = 'slow';
    const t0 = Date.now();
    const a = await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: JSON.stringify([event('i-10')]) });
    h.sink.mode = 'ok';
    assertError(a, 503);
    assert.ok(Date.now() - t0 < 2900, 'answered at the timeout, not when the sink finished');
  });

  it('unknown routes: JSON 404 under /api; pipeline for admin', async () => {
    assertError(await call(h.base, '/api/v1/nothing', { token: 'admin' }), 404);
    assertError(await call(h.base, '/api/v2/counts'), 404);
    assertError(await call(h.base, '/elsewhere'), 404);
    assert.equal((await call(h.base, '/api/v1/pipeline', { token: 'admin' })).status, 200);
  });

  it('/metrics from loopback, with request counters by route and status', async () => {
    // The requests it counts, made here: the test runs alone too.
    assert.equal((await call(h.base, '/api/v1/counts?from=x', { token: 'admin' })).status, 400);
    assert.equal((await call(h.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body: JSON.stringify([event('m-1'), { impression_id: 'm-2' }]) })).status, 202);
    const res = await fetch(`${h.base}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /tally_api_http_requests_total\{method="GET",route="\/api\/v1\/counts",status="400"\} \d+/);
    assert.match(text, /tally_api_http_request_duration_seconds_bucket/);
    assert.match(text, /tally_ingest_events_rejected_total\{reason="missing_field"\} \d+/);
    assert.match(text, /tally_ingest_events_accepted_total \d+/);
  });
});
