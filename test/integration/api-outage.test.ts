/**
 * `tally api` when a server it needs is unreachable (Kafka or ClickHouse on a port nobody listens
 * on): 503 with Retry-After where that server is needed, everything else still answers.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import type { IngestResponse } from '../../server/src/contracts/api-types.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { createSandbox, freePort, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { assertError, call, createTokens, eventMaker, runAdvertisers, startApi, type Tokens } from './api-fixtures.js';
import { waitForLog } from '../kit/role-logs.js';

describe('REST API with Kafka or ClickHouse unreachable (tally api as a process)', function () {
  this.timeout(300_000);
  const { P, ADV1, ADV2 } = runAdvertisers();
  const makeEvent = eventMaker(P, Date.now());

  let sb: Sandbox;
  let ch: ClickHouseClient;
  let tok: Tokens;
  const apis: RoleProcess[] = [];

  before(async () => {
    sb = await createSandbox('apioutage');
    ch = createClickHouse(sb.config);
    tok = await createTokens(TokenStore.forClickHouse(ch, sb.config.clickhouse.database), ADV1, ADV2);
  });

  after(async () => {
    await Promise.all(apis.map((p) => p.stop()));
    await ch?.close();
    await sb?.cleanup();
  });

  it('Kafka unreachable: ingest answers 503 with Retry-After, reads still work, /readyz 503', async () => {
    const deadKafka = await freePort();
    const { api: p, base: b, port } = await startApi({ ...sb.env, KAFKA_BROKERS: `127.0.0.1:${deadKafka}`, TALLY_INGEST_TIMEOUT_MS: '2000' });
    apis.push(p);
    const t0 = Date.now();
    const a = await call<IngestResponse>(b, '/api/v1/impressions', { token: tok.ingest, type: 'application/json', body: JSON.stringify([makeEvent(ADV1)]) });
    assertError(a, 503);
    assert.ok(a.headers.get('retry-after'));
    assert.ok(Date.now() - t0 < 10_000, `503 after ${Date.now() - t0} ms`);
    assert.equal((await call(b, '/api/v1/me', { token: tok.admin })).status, 200);
    const r = await call<{ kafka: boolean; clickhouse: boolean }>(b, '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual([r.body.kafka, r.body.clickhouse], [false, true]);
    // The live feed cannot start: a websocket to it is refused at once (503), not left hanging.
    const upgrade = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/socket.io/?EIO=4&transport=websocket', headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' } });
      req.setTimeout(5_000, () => reject(new Error('websocket upgrade left hanging')));
      req.on('upgrade', () => reject(new Error('upgraded without a live feed')));
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); });
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      });
      req.on('error', reject);
      req.end();
    });
    assert.match(upgrade, /^503 the live feed is starting/);
    await p.stop();
  });

  it('ClickHouse unreachable: 503 (not 401, not 500), /healthz still 200', async () => {
    const deadCh = await freePort();
    const { api: p, base: b } = await startApi({ ...sb.env, CLICKHOUSE_URL: `http://127.0.0.1:${deadCh}` });
    apis.push(p);
    const a = await call(b, '/api/v1/counts?advertiser_id=x', { token: tok.admin });
    assertError(a, 503);
    assert.ok(a.headers.get('retry-after'));
    assert.equal((await call(b, '/readyz')).status, 503);
    assert.equal((await call(b, '/healthz')).status, 200);
    // The 503 is logged as such (once that line is written, an internal error would be too).
    await waitForLog(p, 'api.unavailable', 10_000);
    assert.doesNotMatch(p.log(), /api\.internal_error/);
    await p.stop();
  });
});
