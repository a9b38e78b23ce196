import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  generateToken, hashSecret, parseScope, parseScopes, parseToken, TokenStore, TokenStoreBusyError, type StoredToken, type TokenRepository,
} from '../../server/src/auth/index.js';
import { canIngest, ingestableAdvertisers, readableAdvertisers, type Principal, type Scope } from '../../server/src/auth/principal.js';
import { InvalidArgumentError } from '../../server/src/errors/index.js';

/** api_tokens in memory: newest version per id, and a switch that makes it unreachable. */
class MemoryRepo implements TokenRepository {
  readonly rows = new Map<string, StoredToken>();
  gets = 0;
  down = false;

  async get(id: string): Promise<StoredToken | undefined> {
    this.gets++;
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:18123'), { code: 'ECONNREFUSED' });
    const r = this.rows.get(id);
    return r === undefined ? undefined : { ...r };
  }

  async put(t: StoredToken): Promise<void> {
    const prev = this.rows.get(t.id);
    if (prev === undefined || t.version >= prev.version) this.rows.set(t.id, { ...t });
  }

  async all(): Promise<StoredToken[]> {
    return [...this.rows.values()];
  }
}

describe('API tokens', () => {
  it('format: tly_<12 hex>_<43 base64url>, 256 random bits, different every time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { token, id, secret } = generateToken();
      assert.match(token, /^tly_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
      assert.equal(token, `tly_${id}_${secret}`);
      assert.equal(Buffer.from(secret, 'base64url').length, 32);
      assert.deepEqual(parseToken(token), { id, secret });
      seen.add(token);
    }
    assert.equal(seen.size, 200);
  });

  it('parseToken accepts nothing but the exact format', () => {
    const { token } = generateToken();
    for (const bad of [
      '', token.toUpperCase(), ` ${token}`, `${token} `, `${token}x`, token.slice(0, -1), token.replace('tly_', 'TLY_'),
      token.replace('tly_', 'tlx_'), `${token.slice(0, 4)}${'G'.repeat(12)}${token.slice(16)}`, `${token.slice(0, 17)}+${token.slice(18)}`,
      `${token.slice(0, 17)}=${token.slice(18)}`, `${token}\u0000`, 'tly_abc_def',
    ]) {
      assert.equal(parseToken(bad), undefined, JSON.stringify(bad));
    }
  });

  it('stores SHA-256 of the secret as lowercase hex', () => {
    assert.equal(hashSecret('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const { secret } = generateToken();
    assert.equal(hashSecret(secret), crypto.createHash('sha256').update(secret).digest('hex'));
  });

  it('scopes: admin, ingest, advertiser:<contract id>, exactly', () => {
    assert.equal(parseScope('admin'), 'admin');
    assert.equal(parseScope('ingest'), 'ingest');
    assert.equal(parseScope('advertiser:adv-42'), 'advertiser:adv-42');
    assert.equal(parseScope('advertiser:a:b.c_d-E'), 'advertiser:a:b.c_d-E');
    for (const bad of ['', 'Admin', 'admin ', 'advertiser:', 'advertiser: adv', 'advertiser:a b', "advertiser:a'", `advertiser:${'a'.repeat(129)}`, 'Advertiser:a', 'read', '*']) {
      assert.equal(parseScope(bad), undefined, JSON.stringify(bad));
    }
    assert.deepEqual(parseScopes(['ingest', 'advertiser:a', 'ingest']), ['ingest', 'advertiser:a']);
    assert.throws(() => parseScopes([]), InvalidArgumentError);
    assert.throws(() => parseScopes(['admin', 'root']), /invalid scope "root"/);
  });

  it('scopes: ingest:<contract id> limits ingest to that advertiser; ingest and admin to none', () => {
    assert.equal(parseScope('ingest:adv-42'), 'ingest:adv-42');
    assert.equal(parseScope('ingest:a:b.c_d-E'), 'ingest:a:b.c_d-E');
    for (const bad of ['ingest:', 'ingest: adv', 'ingest:a b', "ingest:a'", `ingest:${'a'.repeat(129)}`, 'Ingest:a', 'ingest :a', 'ingest:*']) {
      assert.equal(parseScope(bad), undefined, JSON.stringify(bad));
    }
    assert.equal(parseScope(`ingest:${'a'.repeat(128)}`), `ingest:${'a'.repeat(128)}`);
    assert.deepEqual(parseScopes(['ingest:a', 'ingest:b', 'ingest:a']), ['ingest:a', 'ingest:b']);
    assert.throws(() => parseScopes(['ingest:a b']), /invalid scope "ingest:a b": expected admin, ingest, ingest:<id> or advertiser:<id>/);
    assert.throws(() => parseScopes([]), /admin, ingest, ingest:<id> or advertiser:<id>/);

    const p = (...scopes: Scope[]): Principal => ({ tokenId: 'a00000000009', name: 't', scopes });
    assert.equal(canIngest(p('ingest:adv-1')), true);
    assert.equal(canIngest(p('ingest')), true);
    assert.equal(canIngest(p('admin')), true);
    assert.equal(canIngest(p('advertiser:adv-1')), false);
    assert.deepEqual(ingestableAdvertisers(p('ingest:adv-1', 'ingest:adv-2', 'advertiser:adv-3')), ['adv-1', 'adv-2']);
    assert.equal(ingestableAdvertisers(p('ingest:adv-1', 'ingest')), null);
    assert.equal(ingestableAdvertisers(p('admin')), null);
    assert.deepEqual(ingestableAdvertisers(p('advertiser:adv-1')), []);
    // An ingest scope reads nothing.
    assert.deepEqual(readableAdvertisers(p('ingest:adv-1')), []);
  });

  describe('TokenStore', () => {
    let now = 1_000_000;
    const clock = () => now;

    it('create → verify gives the principal; the store never holds the secret', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock });
      const { token, id } = await store.create('ad server 1', ['ingest', 'advertiser:adv-1']);
      const stored = repo.rows.get(id) as StoredToken;
      assert.ok(!JSON.stringify(stored).includes(token.slice(17)), 'secret stored in clear');
      assert.equal(stored.secretSha256, hashSecret(token.slice(17)));
      assert.deepEqual(await store.verify(token), { tokenId: id, name: 'ad server 1', scopes: ['ingest', 'advertiser:adv-1'] });
      const listed = await store.list();
      assert.deepEqual(listed, [{ id, name: 'ad server 1', scopes: ['ingest', 'advertiser:adv-1'], createdAt: now, revoked: false }]);
      assert.ok(!JSON.stringify(listed).includes(stored.secretSha256));
    });

    it('refuses a wrong secret, an unknown id and malformed tokens', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock });
      const { token, id } = await store.create('t', ['admin']);
      const other = generateToken();
      assert.equal(await store.verify(`tly_${id}_${other.secret}`), undefined);
      assert.equal(await store.verify(other.token), undefined);
      assert.equal(await store.verify(token.slice(0, -1)), undefined);
      assert.equal(await store.verify(''), undefined);
      // A stored row with a corrupt hash verifies nothing.
      repo.rows.set(id, { ...(repo.rows.get(id) as StoredToken), secretSha256: 'zz' });
      now += 5_000;
      assert.equal(await store.verify(token), undefined);
    });

    it('create validates the name and scopes', async () => {
      const store = new TokenStore(new MemoryRepo(), { now: clock });
      await assert.rejects(store.create('', ['admin']), InvalidArgumentError);
      await assert.rejects(store.create("x'y", ['admin']), InvalidArgumentError);
      await assert.rejects(store.create('ok', ['advertiser:ADV 1']), InvalidArgumentError);
      await assert.rejects(store.create('ok', []), InvalidArgumentError);
    });

    it('a revoke by another process is seen within the 1 s cache; in this one at once', async () => {
      const repo = new MemoryRepo();
      const here = new TokenStore(repo, { now: clock });
      const elsewhere = new TokenStore(repo, { now: clock });
      const { token, id } = await here.create('t', ['admin']);
      assert.ok(await here.verify(token));
      const gets = repo.gets;
      assert.ok(await here.verify(token));
      assert.equal(repo.gets, gets, 'second verify within the second is cached');

      assert.equal(await elsewhere.revoke(id), 'revoked');
      assert.equal(await elsewhere.verify(token), undefined, 'the revoking process sees it at once');
      now += 999;
      assert.ok(await here.verify(token), 'still cached just under a second');
      now += 1;
      assert.equal(await here.verify(token), undefined, 'revoked after one second');
      assert.equal(await here.revoke(id), 'already_revoked');
      assert.equal(await here.revoke('000000000000'), 'not_found');
      await assert.rejects(here.revoke('ABC'), InvalidArgumentError);
    });

    it('revokeByName revokes every active token of that name and only those', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock });
      const a = await store.create('demo-admin', ['admin']);
      now += 1000;
      const b = await store.create('demo-admin', ['admin']);
      const keep = await store.create('demo-admin-2', ['admin']);
      assert.deepEqual((await store.revokeByName('demo-admin')).sort(), [a.id, b.id].sort());
      assert.equal(await store.verify(a.token), undefined);
      assert.equal(await store.verify(b.token), undefined);
      assert.ok(await store.verify(keep.token));
    });

    it('refreshes a busy token in the background: requests never wait while the entry is under a second old', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock });
      const { token } = await store.create('busy', ['ingest']);
      assert.ok(await store.verify(token));
      const gets = repo.gets;
      // The store hangs from now on; a request must still be answered from the cache.
      let release: () => void = () => undefined;
      const slowGet = repo.get.bind(repo);
      repo.get = (id: string) => new Promise((resolve) => { release = () => resolve(slowGet(id)); });
      now += 600;
      const answered = await Promise.race([store.verify(token).then((p) => p !== undefined), new Promise((r) => setTimeout(() => r('waited'), 50))]);
      assert.equal(answered, true, 'answered from the cache while the refresh runs');
      assert.ok(await store.verify(token), 'one refresh at a time');
      release();
      await new Promise((r) => setImmediate(r));
      assert.equal(repo.gets, gets + 1, 'exactly one background lookup');
      now += 900; // 1.5 s after the first lookup, 0.9 s after the refresh started: the refreshed entry serves
      assert.equal(await Promise.race([store.verify(token).then((p) => p !== undefined), new Promise((r) => setTimeout(() => r('waited'), 50))]), true);
    });

    it('an unreachable store rejects (503 upstream, not 401) and is not cached', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock });
      const { token } = await store.create('t', ['admin']);
      now += 5_000;
      repo.down = true;
      await assert.rejects(store.verify(token), /ECONNREFUSED/);
      repo.down = false;
      assert.ok(await store.verify(token));
    });

    it('the cache is bounded', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock, maxCacheEntries: 3 });
      const { token } = await store.create('t', ['admin']);
      await store.verify(token);
      for (let i = 0; i < 5; i++) await store.verify(generateToken().token);
      const gets = repo.gets;
      await store.verify(token);
      assert.equal(repo.gets, gets + 1, 'the oldest entry was dropped');
    });

    it('an unknown id is refused without another lookup for the negative-cache time; a created one is known at once', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock, negativeCacheMs: 60_000 });
      const made = generateToken().token;
      assert.equal(await store.verify(made), undefined);
      const gets = repo.gets;
      for (let i = 0; i < 50; i++) {
        now += 1_000;
        assert.equal(await store.verify(made), undefined);
      }
      assert.equal(repo.gets, gets, 'no lookup for 50 s');
      assert.equal(store.stats.unknownCached, 50);
      now += 11_000;
      assert.equal(await store.verify(made), undefined);
      assert.equal(repo.gets, gets + 1, 'asked again after 60 s');
      const { token } = await store.create('t', ['admin']);
      assert.ok(await store.verify(token));
    });

    it('lookups are bounded in flight: 8 run, 256 wait, more are refused at once without a round trip', async () => {
      let release!: () => void;
      const held = new Promise<void>((r) => { release = r; });
      let started = 0;
      const slow: TokenRepository = {
        get: async () => { started++; await held; return undefined; },
        put: async () => undefined,
        all: async () => [],
      };
      const store = new TokenStore(slow, { now: clock, maxLookupsInFlight: 8 });
      const pending = Array.from({ length: 8 + 256 }, () => store.verify(generateToken().token));
      await new Promise((r) => setImmediate(r));
      assert.equal(started, 8);
      await assert.rejects(store.verify(generateToken().token), TokenStoreBusyError);
      assert.equal(store.stats.busy, 1);
      release();
      assert.deepEqual(new Set(await Promise.all(pending)), new Set([undefined]));
      assert.equal(started, 8 + 256, 'the waiting ones ran after');
      assert.equal(store.stats.lookups, 8 + 256);
    });

    it('recentlyValid: only ids verified valid here, for 10 minutes, and only for a token of that id', async () => {
      const store = new TokenStore(new MemoryRepo(), { now: clock });
      const { token } = await store.create('t', ['admin']);
      assert.equal(store.recentlyValid(token), false, 'created is not verified');
      assert.ok(await store.verify(token));
      assert.equal(store.recentlyValid(token), true);
      assert.equal(store.recentlyValid('tly_bad'), false);
      now += 10 * 60_000;
      assert.equal(store.recentlyValid(token), false);
    });

    it('the cache never lasts longer than a second, whatever is asked', async () => {
      const repo = new MemoryRepo();
      const store = new TokenStore(repo, { now: clock, cacheMs: 60_000 });
      const { token } = await store.create('t', ['admin']);
      await store.verify(token);
      now += 1000;
      const gets = repo.gets;
      await store.verify(token);
      assert.equal(repo.gets, gets + 1);
    });
  });
});
