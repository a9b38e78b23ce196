/** The express app around fakes: per-token limits, CORS, metrics auth and the ingest body limits. */
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { loadConfig } from '../../server/src/config/index.js';
import { type Harness, start, call, assertError, event } from './api-app-fixtures.js';

describe('API app (fakes): limits, CORS, metrics auth', () => {
  let h: Harness;
  before(async () => {
    h = await start();
  });
  after(async () => h.close());

  it('per-token API and ingest limits are separate buckets; 429 in the error shape', async () => {
    const l = await start({ TALLY_API_RATE_LIMIT_PER_MIN: '3', TALLY_INGEST_RATE_LIMIT_PER_MIN: '2' });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await call(l.base, '/api/v1/me', { token: 'admin' })).status, 200);
      const limited = await call(l.base, '/api/v1/me', { token: 'admin' });
      assertError(limited, 429);
      assert.ok(limited.headers.get('retry-after'));
      assert.equal((await call(l.base, '/api/v1/me', { token: 'adv1' })).status, 200, 'another token has its own bucket');
      const ingest = () => call(l.base, '/api/v1/impressions', { token: 'admin', type: 'application/json', body: JSON.stringify([event('x')]) });
      assert.equal((await ingest()).status, 202);
      assert.equal((await ingest()).status, 202);
      assertError(await ingest(), 429);
    } finally {
      await l.close();
    }
  });

  it('requests with bad tokens are limited per address; valid tokens are not held back by them', async () => {
    const l = await start({ TALLY_AUTH_FAILURE_LIMIT_PER_MIN: '2' });
    try {
      assertError(await call(l.base, '/api/v1/me', { token: 'bad' }), 401);
      assertError(await call(l.base, '/api/v1/me'), 401);
      assertError(await call(l.base, '/api/v1/me', { token: 'bad' }), 429);
      assert.equal((await call(l.base, '/api/v1/me', { token: 'admin' })).status, 200);
    } finally {
      await l.close();
    }
  });

  it('CORS only for the listed origins', async () => {
    const c = await start({ TALLY_CORS_ORIGINS: 'https://dash.example.com, http://127.0.0.1:5173' });
    try {
      const ok = await call(c.base, '/api/v1/me', { token: 'admin', headers: { origin: 'https://dash.example.com' } });
      assert.equal(ok.headers.get('access-control-allow-origin'), 'https://dash.example.com');
      const other = await call(c.base, '/api/v1/me', { token: 'admin', headers: { origin: 'https://evil.example.com' } });
      assert.equal(other.headers.get('access-control-allow-origin'), null);
      const pre = await fetch(`${c.base}/api/v1/counts`, {
        method: 'OPTIONS', headers: { origin: 'http://127.0.0.1:5173', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
      });
      assert.equal(pre.status, 204);
      assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Authorization/);
    } finally {
      await c.close();
    }
    const none = await call(h.base, '/api/v1/me', { token: 'admin', headers: { origin: 'https://dash.example.com' } });
    assert.equal(none.headers.get('access-control-allow-origin'), null);
    assert.throws(() => loadConfig({ TALLY_CORS_ORIGINS: 'https://x.example.com/path' }), /TALLY_CORS_ORIGINS/);
  });

  it('TALLY_INGEST_MAX_JSON_DEPTH and TALLY_INGEST_MAX_INFLATE_RATIO reach the ingest route', async () => {
    const l = await start({ TALLY_INGEST_MAX_JSON_DEPTH: '3', TALLY_INGEST_MAX_INFLATE_RATIO: '2' });
    try {
      const post = (body: string | Buffer, headers: Record<string, string> = {}) => call(l.base, '/api/v1/impressions', { token: 'ingest', type: 'application/json', body, headers });
      assert.equal((await post(JSON.stringify([{ ...event('d-1'), extra: [1] }]))).status, 202);
      const deep = await post(JSON.stringify([{ ...event('d-2'), extra: [[1]] }]));
      assertError(deep, 400);
      assert.match((deep.body.error as { message: string }).message, /nesting deeper than 3 levels/);
      // ~250 KB (past the 64 KiB always allowed) of similar events compress far better than 2:1.
      const many = JSON.stringify(Array.from({ length: 2000 }, (_, i) => event(`d-${i}`)));
      const gz = await post(zlib.gzipSync(many), { 'content-encoding': 'gzip' });
      assertError(gz, 413);
      assert.match((gz.body.error as { message: string }).message, /more than 2 times its size/);
      assert.equal((await post(Buffer.from(many))).status, 202, 'the same body uncompressed');
    } finally {
      await l.close();
    }
  });

  it('TALLY_METRICS_AUTH=token: /metrics needs an admin token even from loopback', async () => {
    const m = await start({ TALLY_METRICS_AUTH: 'token' });
    try {
      assertError(await call(m.base, '/metrics'), 401);
      assertError(await call(m.base, '/metrics', { token: 'adv1' }), 403);
      const res = await fetch(`${m.base}/metrics`, { headers: { authorization: 'Bearer admin' } });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /tally_api_http_requests_total/);
    } finally {
      await m.close();
    }
  });
});
