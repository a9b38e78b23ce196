/**
 * Who may call what on the REST API, on the real stack (`tally api` as a process on a fresh
 * sandbox; no aggregator needed): 401 for missing, malformed, unknown and revoked tokens, 403 for
 * another advertiser or a missing scope, 400 naming every bad parameter, never a 500.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import type { IngestResponse } from '../../server/src/contracts/api-types.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { createSandbox, eventually, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { assertError, call, createTokens, eventMaker, runAdvertisers, startApi, type Tokens } from './api-fixtures.js';

describe('REST API tokens, scopes and parameters (real Kafka + ClickHouse, tally api as a process)', function () {
  this.timeout(300_000);
  const { P, ADV1, ADV2, ADV1_UPPER } = runAdvertisers();
  const makeEvent = eventMaker(P, Date.now());

  let sb: Sandbox;
  let api: RoleProcess;
  let base: string;
  let ch: ClickHouseClient;
  let store: TokenStore;
  let tok: Tokens;

  const post = (token: string, body: string, type = 'application/json') => call<IngestResponse>(base, '/api/v1/impressions', { token, body, type });

  before(async () => {
    sb = await createSandbox('apiauth');
    ch = createClickHouse(sb.config);
    store = TokenStore.forClickHouse(ch, sb.config.clickhouse.database);
    tok = await createTokens(store, ADV1, ADV2);
    ({ api, base } = await startApi(sb.env));
  });

  after(async () => {
    await api?.stop();
    await ch?.close();
    await sb?.cleanup();
  });

  it('401: no token, malformed, unknown, wrong secret, revoked (within about a second)', async () => {
    assertError(await call(base, '/api/v1/me'), 401, undefined, 'none');
    assertError(await call(base, '/api/v1/me', { token: 'tly_nope' }), 401, undefined, 'malformed');
    const fake = `tly_${crypto.randomBytes(6).toString('hex')}_${crypto.randomBytes(32).toString('base64url')}`;
    assertError(await call(base, '/api/v1/me', { token: fake }), 401, undefined, 'unknown');
    const wrongSecret = `${tok.adv1.slice(0, 17)}${crypto.randomBytes(32).toString('base64url')}`;
    assertError(await call(base, '/api/v1/me', { token: wrongSecret }), 401, undefined, 'wrong secret');
    assertError(await call(base, '/api/v1/counts?advertiser_id=x', { token: tok.adv1.toUpperCase() }), 401, undefined, 'case-changed token');

    const victim = await store.create('it victim', [`advertiser:${ADV1}`, 'ingest']);
    assert.equal((await call(base, '/api/v1/me', { token: victim.token })).status, 200);
    assert.equal(await store.revoke(victim.id), 'revoked');
    const revokedAt = Date.now();
    await eventually('revoked token refused', async () => (await call(base, '/api/v1/me', { token: victim.token })).status === 401, 5_000, 100);
    assert.ok(Date.now() - revokedAt < 2_500, `revoke took ${Date.now() - revokedAt} ms to take effect`);
    assertError(await post(victim.token, JSON.stringify([makeEvent(ADV1)])), 401, undefined, 'revoked ingest');
  });

  it('403: another advertiser (including case and padding variants), wrong scope for ingest, pipeline, reads', async () => {
    for (const adv of [ADV2, ADV1_UPPER, `${P}adv-01`, `${P}Adv-1`, `${P}adv-1.`, `${P}adv-10`]) {
      assertError(await call(base, `/api/v1/counts?advertiser_id=${adv}`, { token: tok.adv1 }), 403, undefined, `counts ${adv}`);
      assertError(await call(base, `/api/v1/campaigns?advertiser_id=${adv}`, { token: tok.adv1 }), 403, undefined, `campaigns ${adv}`);
    }
    assertError(await post(tok.adv1, JSON.stringify([makeEvent(ADV1)])), 403, undefined, 'ingest without scope');
    assertError(await call(base, '/api/v1/pipeline', { token: tok.adv1 }), 403, undefined, 'pipeline');
    assertError(await call(base, `/api/v1/counts?advertiser_id=${ADV1}`, { token: tok.ingest }), 403, undefined, 'ingest token reads');
    assertError(await call(base, '/api/v1/advertisers', { token: tok.ingest }), 403, undefined, 'ingest token advertisers');
  });

  it('400 for every bad parameter, injection-shaped values included; never a 500', async () => {
    const a1 = `advertiser_id=${ADV1}`;
    const cases: Array<[string, string]> = [
      [`${a1}&from=yesterday`, 'from'],
      [`${a1}&from=2025-11-26T10:00:00`, 'from'],
      [`${a1}&to=2025-02-30T00:00:00Z`, 'to'],
      [`${a1}&from=-1`, 'from'],
      [`${a1}&from=1e12`, 'from'],
      [`${a1}&from=2000&to=1000`, 'from'],
      [`${a1}&from=1000&to=1000`, 'from'],
      [`${a1}&from=2025-01-01T00:00:00Z&to=2025-04-05T00:00:01Z`, 'to'],
      [`${a1}&granularity=minute`, 'granularity'],
      [`${a1}&granularity=`, 'granularity'],
      [`advertiser_id=${encodeURIComponent(`${ADV1}'`)}`, 'advertiser_id'],
      [`advertiser_id=${encodeURIComponent(`${ADV1}' OR '1'='1`)}`, 'advertiser_id'],
      [`advertiser_id=${encodeURIComponent(`${ADV1}'--`)}`, 'advertiser_id'],
      [`advertiser_id=${encodeURIComponent(`${ADV1}/**/`)}`, 'advertiser_id'],
      [`advertiser_id=${encodeURIComponent(`${ADV1}#`)}`, 'advertiser_id'],
      [`advertiser_id=${ADV1}%00`, 'advertiser_id'],
      [`advertiser_id=${encodeURIComponent(`${ADV1}\\`)}`, 'advertiser_id'],
      [`advertiser_id=${encodeURIComponent(` ${ADV1}`)}`, 'advertiser_id'],
      [`advertiser_id=${ADV1}&advertiser_id=${ADV1}`, 'advertiser_id'],
      [`${a1}&campaign_id=${encodeURIComponent("x'); DROP TABLE impression_counts; --")}`, 'campaign_id'],
      [`${a1}&campaign_id=${'c'.repeat(129)}`, 'campaign_id'],
    ];
    for (const [qs, parameter] of cases) {
      assertError(await call(base, `/api/v1/counts?${qs}`, { token: tok.adv1 }), 400, parameter, qs);
    }
    assertError(await call(base, '/api/v1/counts', { token: tok.adv1 }), 400, 'advertiser_id', 'advertiser_id missing');
    assertError(await call(base, `/api/v1/campaigns?advertiser_id=${encodeURIComponent("a'b")}`, { token: tok.admin }), 400, 'advertiser_id', 'campaigns');
    // Unknown parameters are ignored.
    assert.equal((await call(base, `/api/v1/counts?${a1}&utm_source=x&from_=1`, { token: tok.adv1 })).status, 200);
    assert.doesNotMatch(api.log(), /api\.internal_error/, 'no 500 was logged');
  });
});
