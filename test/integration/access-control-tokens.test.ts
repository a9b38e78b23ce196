/**
 * A revoked token on the real stack (`tally api` as a child process): REST refuses it within about
 * a second on every route, its open socket is disconnected, and it cannot connect again.
 */
import assert from 'node:assert/strict';
import { eventually, sleep } from '../kit/harness.js';
import { AccessControlWorld, get, json, Spy } from './access-control-fixtures.js';

describe('token revocation (real Kafka + ClickHouse, tally api as a process)', function () {
  this.timeout(180_000);
  const w = AccessControlWorld.forSuite({ seeded: false });
  const { A, tok, billingFrom, billingTo } = w;

  it('a revoked token: REST refused within about a second, its open socket disconnected', async () => {
    const victim = await w.tokenStore.create('acl victim', [`advertiser:${A}`]);
    const countsA = `/api/v1/counts?advertiser_id=${A}`;
    assert.equal((await get(w.base, countsA, victim.token)).status, 200);
    const s = new Spy(w.base, { token: victim.token });
    try {
      await s.ready();
      assert.equal(s.snapshots[0].advertiserId, A);
      // Keep the API's token cache warm right up to the revocation.
      assert.equal((await get(w.base, '/api/v1/me', victim.token)).status, 200);

      assert.equal(await w.tokenStore.revoke(victim.id), 'revoked');
      const revokedAt = Date.now();
      let refusedAfter = -1;
      while (Date.now() - revokedAt < 5_000) {
        const a = await get(w.base, countsA, victim.token);
        if (a.status === 401) {
          refusedAfter = Date.now() - revokedAt;
          break;
        }
        assert.equal(a.status, 200, a.text.slice(0, 200));
        // The poll interval of this wait for the refusal: every answer before it must still be a 200,
        // which eventually() cannot check (a failing probe only counts as "not yet" there).
        await sleep(25);
      }
      process.stderr.write(`      [acl] revoked token refused by REST after ${refusedAfter} ms\n`);
      assert.ok(refusedAfter >= 0 && refusedAfter <= 2_000, `REST refused after ${refusedAfter} ms`);
      // Stays refused, on every route.
      for (const path of [countsA, `/api/v1/campaigns`, '/api/v1/advertisers', '/api/v1/me', `/api/v1/billing/export?advertiser_id=${A}&from=${billingFrom}&to=${billingTo}`,
        countsA, countsA, countsA]) {
        const a = await get(w.base, path, victim.token);
        assert.equal(a.status, 401, `${path}: ${a.text.slice(0, 200)}`);
        assert.match(json<unknown>(a, path).error?.message ?? '', /revoked/);
      }

      await eventually('socket disconnected', async () => s.disconnectedAt !== undefined, 5_000, 20);
      const took = (s.disconnectedAt as number) - revokedAt;
      process.stderr.write(`      [acl] revoked socket disconnected after ${took} ms (${s.disconnectReason})\n`);
      assert.ok(took <= 3_000, `socket disconnected after ${took} ms`);
      assert.equal(s.disconnectReason, 'io server disconnect');
      assert.ok(s.denied.some((d) => d.message === 'token revoked'), JSON.stringify(s.denied));

      // Reconnecting with it is refused; A's other token still works.
      const again = new Spy(w.base, { token: victim.token });
      try {
        await eventually('connect_error', async () => again.connectError !== undefined, 5_000, 20);
        assert.equal(again.connectError?.message, 'unauthorized');
        assert.equal(again.snapshots.length, 0);
      } finally {
        again.close();
      }
      assert.equal((await get(w.base, countsA, tok.a)).status, 200);
    } finally {
      s.close();
    }
  });
});
