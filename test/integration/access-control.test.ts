/**
 * Access control over REST on the real stack (`tally api` as a child process with an aggregator and
 * a sink; two advertisers with real, distinctive counts): advertiser A's token tries every way to
 * see advertiser B and is refused, and no answer ever carries one of B's ids or numbers. The same
 * over socket.io: access-control-socket.test.ts; hostile parameter values:
 * access-control-injection.test.ts; revoked tokens: access-control-tokens.test.ts.
 */
import assert from 'node:assert/strict';
import type { AdvertisersResponse, CampaignsResponse, CountsResponse } from '../../server/src/contracts/api-types.js';
import { A_COST, A_IMPS, AccessControlWorld, get, json } from './access-control-fixtures.js';

describe('access control over REST (real Kafka + ClickHouse, tally api as a process)', function () {
  this.timeout(180_000);
  const w = AccessControlWorld.forSuite({ seeded: true });
  const { A, B, tok, dayStart, billingFrom, billingTo } = w;
  const leaks = (text: string) => w.leaks(text);

  it('the leak detector sees B when B is legitimately read (control)', async () => {
    const q = `advertiser_id=${B}&from=${billingFrom}&to=${billingTo}`;
    for (const path of [`/api/v1/counts?advertiser_id=${B}&from=${dayStart}&to=${dayStart + 86_400_000}`, `/api/v1/campaigns?advertiser_id=${B}`,
      '/api/v1/advertisers', `/api/v1/billing/export?${q}&format=json`, `/api/v1/billing/export?${q}&format=csv`]) {
      const a = await get(w.base, path, tok.admin);
      assert.equal(a.status, 200, `${path}: ${a.text.slice(0, 200)}`);
      const found = leaks(a.text);
      assert.ok(found.includes(B.toLowerCase()) && found.some((x) => /^[0-9]+$/.test(x)), `${path}: detector found only ${found.join(', ')}`);
    }
    // And A's own view works and shows A's numbers.
    const own = json<CountsResponse>(await get(w.base, `/api/v1/counts?advertiser_id=${A}&from=${dayStart}&to=${dayStart + 86_400_000}`, tok.a), 'own');
    assert.equal(own.totals.impressions, A_IMPS);
    assert.equal(own.totals.spendMicros, A_IMPS * A_COST);
  });

  it('REST: advertiser A cannot see B by any spelling of B (400/403, no B id or number in any body)', async () => {
    const billingRest = `from=${billingFrom}&to=${billingTo}&format=json`;
    // [raw advertiser_id part of the query, expected status for counts/billing]. 403 = another valid id.
    const forbidden = [
      B, B.toUpperCase(), B[0].toUpperCase() + B.slice(1), `${B.slice(0, -1)}B`, `${B}.`, `.${B}`, `advertiser:${B}`, `${A}:${B}`,
      A.toUpperCase(), `${A}.`, 'null', 'undefined', 'true', '0', 'admin', `advertiser%5F${B}`,
    ].map((v) => `advertiser_id=${v}`);
    forbidden.push(`advertiser%5Fid=${B}`); // the key itself percent-encoded: decodes to advertiser_id
    const bad = [
      `%20${B}`, `${B}%20`, `+${B}`, `${B}+`, `%09${B}`, `${B}%0A`, `${B}%0D%0A`, `%C2%A0${B}`, `${B}%E2%80%8B`,
      `${B}%00`, `%00${B}`, `${A}%00${B}`, `${B}%2500`, `%2520${B}`, `${B}%25`, '%25', '*', '',
      `%5B%22${B}%22%5D`, `%7B%22%24ne%22%3A%22${A}%22%7D`, `%7B%22%24in%22%3A%5B%22${A}%22%2C%22${B}%22%5D%7D`,
      `${A}%2C${B}`, `${A}%7C${B}`, `%22${B}%22`, `%27${B}%27`, `${A}%27%20OR%20advertiser_id%3D%27${B}`, `${A}%27%20OR%201%3D1%20--`,
      `${B.replace('-', '%E2%80%90')}`, `${B.replace('a', '%D0%B0')}`, `%FF${B}`, `${B}%C0%AE`,
    ].map((v) => `advertiser_id=${v}`);
    // Repeated parameters: refused whatever the order.
    bad.push(`advertiser_id=${A}&advertiser_id=${B}`, `advertiser_id=${B}&advertiser_id=${A}`, `advertiser_id=${A}&advertiser_id=${A}`,
      `advertiser_id=${A}&advertiser_id=${B}&advertiser_id=${A}`);
    // Keys that are not advertiser_id (unknown, ignored): no filter given → A's own data at most.
    const ignoredKeys = [`advertiser_id%5B%5D=${B}`, `advertiser_id[]=${B}`, `advertiser_id[0]=${B}`, `advertiser_id[$ne]=${A}`,
      `ADVERTISER_ID=${B}`, `advertiserId=${B}`, `advertiser_id.=${B}`, `advertiser_id%00=${B}`,
      `advertiser_id=${A}&advertiser_id[]=${B}`, `advertiser_id=${A}&advertiserId=${B}`];

    const failures: string[] = [];
    let probes = 0;
    const check = async (path: string, allowed: (status: number) => boolean, onlyA: boolean) => {
      probes++;
      const a = await get(w.base, path, tok.a);
      // A 404 names the path asked for: the caller's own input echoed, not B's data.
      const found = leaks(a.status === 404 ? a.text.split(path.split('?')[0]).join('') : a.text);
      if (found.length > 0) failures.push(`${path} → ${a.status} LEAKS ${found.join(', ')}: ${a.text.slice(0, 200)}`);
      if (!allowed(a.status)) failures.push(`${path} → ${a.status}: ${a.text.slice(0, 200)}`);
      if (a.status >= 400) {
        const body = json<unknown>(a, path);
        if (body.error?.status !== a.status || typeof body.error.message !== 'string') failures.push(`${path}: not the JSON error shape: ${a.text.slice(0, 200)}`);
      } else if (onlyA) {
        const advs = new Set<string>();
        const body = json<Partial<CampaignsResponse & AdvertisersResponse & CountsResponse>>(a, path);
        for (const r of body.campaigns ?? []) advs.add(r.advertiserId);
        for (const r of body.advertisers ?? []) advs.add(r.advertiserId);
        for (const r of body.rows ?? []) advs.add(r.advertiserId);
        if ([...advs].some((x) => x !== A)) failures.push(`${path} → 200 with advertisers ${[...advs].join(', ')}`);
      }
    };
    const is = (...codes: number[]) => (s: number) => codes.includes(s);
    for (const q of forbidden) {
      await check(`/api/v1/counts?${q}`, is(403), false);
      await check(`/api/v1/campaigns?${q}`, is(403), false);
      await check(`/api/v1/billing/export?${q}&${billingRest}`, is(403), false);
      await check(`/api/v1/advertisers?${q}`, is(200), true);
    }
    for (const q of bad) {
      await check(`/api/v1/counts?${q}`, is(400), false);
      await check(`/api/v1/campaigns?${q}`, is(400), false);
      await check(`/api/v1/billing/export?${q}&${billingRest}`, is(400), false);
      await check(`/api/v1/advertisers?${q}`, is(200), true);
    }
    for (const q of ignoredKeys) {
      // counts and billing require advertiser_id from an advertiser token; campaigns/advertisers fall back to A's own.
      const withA = q.startsWith(`advertiser_id=${A}&`);
      await check(`/api/v1/counts?${q}`, withA ? is(200) : is(400), true);
      await check(`/api/v1/campaigns?${q}`, is(200), true);
      await check(`/api/v1/billing/export?${q}&${billingRest}`, withA ? is(200) : is(400), false);
      await check(`/api/v1/advertisers?${q}`, is(200), true);
    }
    // Header and path tricks are not parameters at all.
    const hdr = await fetch(`${w.base}/api/v1/campaigns`, { headers: { authorization: `Bearer ${tok.a}`, 'x-advertiser-id': B, 'x-forwarded-for': '127.0.0.1' } });
    const hdrText = await hdr.text();
    assert.deepEqual(leaks(hdrText), [], hdrText);
    for (const path of [`/api/v1/counts/${B}`, `/api/v1/campaigns/${B}`, `/api/v1/advertisers/${B}`, `/api/v1//counts?advertiser_id=${B}`,
      `/api/v1/COUNTS?advertiser_id=${B}`, `/api/v1/./counts?advertiser_id=${B}`, `/api/v1/counts/..%2Fcampaigns?advertiser_id=${B}`,
      `/api/v1/pipeline`, `/api/v1/billing/export/?advertiser_id=${B}&${billingRest}`]) {
      await check(path, is(400, 403, 404), false);
    }
    // /me and /advertisers: A's token knows A only.
    const me = json<{ advertisers: string[]; admin: boolean }>(await get(w.base, '/api/v1/me', tok.a), 'me');
    assert.deepEqual([me.advertisers, me.admin], [[A], false]);
    const advs = json<AdvertisersResponse>(await get(w.base, '/api/v1/advertisers', tok.a), 'advertisers');
    assert.deepEqual(advs.advertisers, [{ advertiserId: A, campaigns: 1, impressions: A_IMPS, spendMicros: A_IMPS * A_COST }]);
    process.stderr.write(`      [acl] ${probes} REST probes as advertiser A\n`);
    assert.deepEqual(failures, [], `${failures.length} of ${probes} probes failed:\n${failures.slice(0, 30).join('\n')}`);
  });
});
