/**
 * Access control and injection resistance on the real stack: `tally api` as a child process with an
 * aggregator and a sink, tokens from the TokenStore, two advertisers with real, distinctive counts.
 *
 *  1. Advertiser A's token tries every way to see advertiser B (REST and socket.io): refused, and
 *     no answer, snapshot or update ever carries one of B's ids or numbers.
 *  2. Injection-shaped and malformed values in every parameter of every read route: 400 naming the
 *     parameter, and none of them reaches ClickHouse (checked in system.query_log, with a positive
 *     control showing that the check does see a legitimate request's value).
 *  3. A revoked token: REST refused within about a second, its open socket disconnected.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { io, type Socket } from 'socket.io-client';
import type { AdvertisersResponse, CampaignsResponse, CountsResponse, IngestResponse } from '../../server/src/contracts/api-types.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse, queryRows, stringLiteral } from '../../server/src/clickhouse/index.js';
import type { ClientToServerEvents, LiveSnapshot, LiveUpdate, ServerToClientEvents } from '../../server/src/contracts/live-protocol.js';
import { freePort, createSandbox, eventually, RoleProcess, sleep, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';


interface ErrorShape {
  error?: { status: number; message: string; parameter?: string };
}

interface RawAnswer {
  status: number;
  text: string;
}

/** GET with a raw query string (sent as written: no re-encoding, so padding and %00 tricks arrive intact). */
async function get(base: string, pathAndQuery: string, token?: string): Promise<RawAnswer> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + pathAndQuery, { headers, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, text: await res.text() };
}

function json<T>(a: RawAnswer, what: string): T & ErrorShape {
  try {
    return JSON.parse(a.text) as T & ErrorShape;
  } catch {
    throw new Error(`${what}: status ${a.status}, body is not JSON: ${a.text.slice(0, 200)}`);
  }
}

/** Percent-encodes every byte that is not unreserved (spaces as %20, NUL as %00, quotes, UTF-8…). */
const enc = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const qs = (params: Array<[string, string]>) => params.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');

/** A LIKE pattern matching `s` literally anywhere (\, % and _ escaped), as a SQL string literal. */
function likeContains(s: string): string {
  return stringLiteral(`%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
}

/**
 * How many statements in system.query_log contain each marker (after SYSTEM FLUSH LOGS). One query
 * for all markers; the markers appear in it only escaped, so it never matches itself.
 */
async function queryLogHits(ch: ClickHouseClient, markers: readonly string[]): Promise<number[]> {
  await ch.command({ query: 'SYSTEM FLUSH LOGS' });
  const out: number[] = [];
  const CHUNK = 200;
  for (let i = 0; i < markers.length; i += CHUNK) {
    const part = markers.slice(i, i + CHUNK);
    const cols = part.map((m, j) => `countIf(query LIKE ${likeContains(m)}) AS m${j}`).join(', ');
    const rows = await queryRows<Record<string, string | number>>(ch,
      // Without this check's own statements (time markers have nothing to escape, so they appear in it verbatim).
      `SELECT ${cols} FROM system.query_log WHERE event_date >= yesterday() AND query NOT LIKE ${likeContains('system.query_log')}`);
    part.forEach((_m, j) => out.push(Number(rows[0][`m${j}`])));
  }
  return out;
}

type Ack = { ok: true } | { ok: false; message: string };

/** A socket.io client that records everything it receives, raw. */
class Spy {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly snapshots: LiveSnapshot[] = [];
  readonly updates: LiveUpdate[] = [];
  readonly denied: Array<{ at: number; message: string }> = [];
  /** Every snapshot and update received, as JSON text (for the leak check). */
  readonly raw: string[] = [];
  connectError: Error | undefined;
  disconnectedAt: number | undefined;
  disconnectReason: string | undefined;

  constructor(url: string, auth: Record<string, unknown>) {
    this.socket = io(url, { path: '/socket.io', auth, reconnection: false, transports: ['websocket'] });
    this.socket.on('snapshot', (s) => { this.snapshots.push(s); this.raw.push(JSON.stringify(s)); });
    this.socket.on('update', (u) => { this.updates.push(u); this.raw.push(JSON.stringify(u)); });
    this.socket.on('denied', (e) => this.denied.push({ at: Date.now(), message: e.message }));
    this.socket.on('connect_error', (err) => { this.connectError = err; });
    this.socket.on('disconnect', (reason) => { this.disconnectedAt = Date.now(); this.disconnectReason = reason; });
  }

  ready(): Promise<void> {
    return eventually('first snapshot', async () => {
      if (this.connectError) throw this.connectError;
      return this.snapshots.length > 0;
    }, 15_000, 20);
  }

  /** Sends any value as the join argument (hostile clients are not bound by the protocol's types). */
  join(value: unknown): Promise<Ack> {
    return new Promise((resolve) => this.socket.emit('join', value as string | null, resolve));
  }

  close(): void {
    this.socket.close();
  }
}

describe('access control and injection (real Kafka + ClickHouse, tally api as a process)', function () {
  this.timeout(180_000);
  const run = crypto.randomBytes(3).toString('hex');
  const A = `acl${run}-adv-a`;
  const B = `acl${run}-adv-b`;
  const A_CMP = `acl${run}-cmp-a1`;
  const B_CMPS = [`acl${run}-secret-b1`, `acl${run}-secret-b2`];
  /** Distinctive counts: B's campaigns get 1453 and 2917 impressions at 7919 micros each; A 211 at 1000. */
  const B_IMPS = [1453, 2917];
  const B_COST = 7919;
  const A_IMPS = 211;
  const A_COST = 1000;
  const EXTRA_B = 13;

  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess;
  let base: string;
  let ch: ClickHouseClient;
  let store: TokenStore;
  const tok = { admin: '', ingest: '', a: '' };
  /** When the seeded events happened; the billing day that holds them. */
  const eventTs = Date.now() - 90_000;
  const dayStart = Math.floor(eventTs / 86_400_000) * 86_400_000;
  const billingFrom = new Date(dayStart).toISOString().slice(0, 10);
  const billingTo = new Date(dayStart + 86_400_000).toISOString().slice(0, 10);
  let seq = 0;

  /** Every string that would betray B: ids (any case) and numbers (standing alone, not inside longer digit runs). */
  const bSecrets = {
    ids: [B, ...B_CMPS].map((s) => s.toLowerCase()),
    numbers: new Set<string>(),
  };
  function addBNumbers(impsPerCampaign: number[]): void {
    const spends = impsPerCampaign.map((n) => n * B_COST);
    const totalImps = impsPerCampaign.reduce((x, y) => x + y, 0);
    const totalSpend = spends.reduce((x, y) => x + y, 0);
    for (const n of [...impsPerCampaign, ...spends, totalImps, totalSpend]) {
      bSecrets.numbers.add(String(n));
      // Spend in currency units, as the billing export writes it (decimal string, no trailing zeros needed to match).
      bSecrets.numbers.add((n / 1e6).toFixed(6).replace(/0+$/, '').replace(/\.$/, ''));
    }
  }
  addBNumbers(B_IMPS);

  function leaks(text: string): string[] {
    const lower = text.toLowerCase();
    const found = bSecrets.ids.filter((id) => lower.includes(id));
    for (const n of bSecrets.numbers) {
      if (n.length >= 4 && new RegExp(`(?<![0-9.])${n.replace('.', '\\.')}(?![0-9])`).test(text)) found.push(n);
    }
    return found;
  }

  function events(adv: string, campaign: string, n: number, cost: number): string {
    const lines: string[] = [];
    for (let i = 0; i < n; i++) {
      seq++;
      lines.push(JSON.stringify({
        impression_id: `acl${run}-imp-${seq}`, ts: eventTs + (seq % 1000), advertiser_id: adv, campaign_id: campaign, cost_micros: cost,
      }));
    }
    return lines.join('\n');
  }

  async function ingest(body: string): Promise<void> {
    const res = await fetch(`${base}/api/v1/impressions`, {
      method: 'POST', headers: { authorization: `Bearer ${tok.ingest}`, 'content-type': 'application/x-ndjson' }, body,
    });
    const r = (await res.json()) as IngestResponse;
    assert.equal(res.status, 202, JSON.stringify(r).slice(0, 300));
    assert.equal(r.rejected, 0);
  }

  async function counted(adv: string): Promise<number> {
    const a = await get(base, `/api/v1/counts?advertiser_id=${adv}&from=${dayStart}&to=${dayStart + 86_400_000}&granularity=day`, tok.admin);
    return a.status === 200 ? json<CountsResponse>(a, 'counts').totals.impressions : -1;
  }

  before(async function () {
    this.timeout(150_000);
    sb = await createSandbox('acl');
    ch = createClickHouse(sb.config);
    store = TokenStore.forClickHouse(ch, sb.config.clickhouse.database);
    tok.admin = (await store.create('acl admin', ['admin'])).token;
    tok.ingest = (await store.create('acl ingest', ['ingest'])).token;
    tok.a = (await store.create('acl advertiser A', [`advertiser:${A}`])).token;
    pipeline = new Pipeline(sb);
    pipeline.startAggregator();
    pipeline.startSink();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // Rate limits out of the way: hundreds of probes per minute are the point here, not the limiter.
    api = new RoleProcess('api', {
      ...sb.env, TALLY_HTTP_PORT: String(port), TALLY_API_RATE_LIMIT_PER_MIN: '100000', TALLY_AUTH_FAILURE_LIMIT_PER_MIN: '100000',
    }, ['--no-web-build']);
    await eventually('api /healthz', async () => {
      if (!api.alive) throw new Error(`api exited:\n${api.log()}`);
      return (await fetch(`${base}/healthz`)).ok;
    }, 60_000, 200);

    await ingest(events(A, A_CMP, A_IMPS, A_COST));
    await ingest(events(B, B_CMPS[0], B_IMPS[0], B_COST));
    await ingest(events(B, B_CMPS[1], B_IMPS[1], B_COST));
    await eventually('A and B counted in ClickHouse', async () => (await counted(A)) === A_IMPS && (await counted(B)) === B_IMPS[0] + B_IMPS[1], 90_000, 250);
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.all([api?.stop(), pipeline?.stopAll()]);
    await ch?.close();
    await sb?.cleanup();
  });

  it('the leak detector sees B when B is legitimately read (control)', async () => {
    const q = `advertiser_id=${B}&from=${billingFrom}&to=${billingTo}`;
    for (const path of [`/api/v1/counts?advertiser_id=${B}&from=${dayStart}&to=${dayStart + 86_400_000}`, `/api/v1/campaigns?advertiser_id=${B}`,
      '/api/v1/advertisers', `/api/v1/billing/export?${q}&format=json`, `/api/v1/billing/export?${q}&format=csv`]) {
      const a = await get(base, path, tok.admin);
      assert.equal(a.status, 200, `${path}: ${a.text.slice(0, 200)}`);
      const found = leaks(a.text);
      assert.ok(found.includes(B.toLowerCase()) && found.some((x) => /^[0-9]+$/.test(x)), `${path}: detector found only ${found.join(', ')}`);
    }
    // And A's own view works and shows A's numbers.
    const own = json<CountsResponse>(await get(base, `/api/v1/counts?advertiser_id=${A}&from=${dayStart}&to=${dayStart + 86_400_000}`, tok.a), 'own');
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
      const a = await get(base, path, tok.a);
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
    const hdr = await fetch(`${base}/api/v1/campaigns`, { headers: { authorization: `Bearer ${tok.a}`, 'x-advertiser-id': B, 'x-forwarded-for': '127.0.0.1' } });
    const hdrText = await hdr.text();
    assert.deepEqual(leaks(hdrText), [], hdrText);
    for (const path of [`/api/v1/counts/${B}`, `/api/v1/campaigns/${B}`, `/api/v1/advertisers/${B}`, `/api/v1//counts?advertiser_id=${B}`,
      `/api/v1/COUNTS?advertiser_id=${B}`, `/api/v1/./counts?advertiser_id=${B}`, `/api/v1/counts/..%2Fcampaigns?advertiser_id=${B}`,
      `/api/v1/pipeline`, `/api/v1/billing/export/?advertiser_id=${B}&${billingRest}`]) {
      await check(path, is(400, 403, 404), false);
    }
    // /me and /advertisers: A's token knows A only.
    const me = json<{ advertisers: string[]; admin: boolean }>(await get(base, '/api/v1/me', tok.a), 'me');
    assert.deepEqual([me.advertisers, me.admin], [[A], false]);
    const advs = json<AdvertisersResponse>(await get(base, '/api/v1/advertisers', tok.a), 'advertisers');
    assert.deepEqual(advs.advertisers, [{ advertiserId: A, campaigns: 1, impressions: A_IMPS, spendMicros: A_IMPS * A_COST }]);
    process.stderr.write(`      [acl] ${probes} REST probes as advertiser A\n`);
    assert.deepEqual(failures, [], `${failures.length} of ${probes} probes failed:\n${failures.slice(0, 30).join('\n')}`);
  });

  it('socket.io: A joining B (any spelling) is denied and never receives B; asking for B in the handshake gives A', async () => {
    const spies: Spy[] = [];
    try {
      const admin = new Spy(base, { token: tok.admin });
      const a = new Spy(base, { token: tok.a });
      const aWantsB = new Spy(base, { token: tok.a, advertiserId: B });
      const aWantsAll = new Spy(base, { token: tok.a, advertiserId: null });
      const aWantsBUpper = new Spy(base, { token: tok.a, advertiserId: B.toUpperCase(), scopes: ['admin'], admin: true });
      const aWantsBArray = new Spy(base, { token: tok.a, advertiserId: [B] });
      const aHeaderB = new Spy(base, { token: tok.a, advertiserId: `${B} ` });
      spies.push(admin, a, aWantsB, aWantsAll, aWantsBUpper, aWantsBArray, aHeaderB);
      await Promise.all(spies.map((s) => s.ready()));

      // The live feed does hold B's rows (the admin sees them): there is something to leak.
      const liveB = () => {
        let n = 0;
        const rows = new Map<string, number>();
        for (const s of admin.snapshots) for (const r of s.rows) rows.set(`${r.windowStart}|${r.advertiserId}|${r.campaignId}`, r.impressions);
        for (const u of admin.updates) for (const r of u.rows) rows.set(`${r.windowStart}|${r.advertiserId}|${r.campaignId}`, r.impressions);
        for (const [k, v] of rows) if (k.split('|')[1] === B) n += v;
        return n;
      };
      await eventually('admin sees B live', async () => liveB() === B_IMPS[0] + B_IMPS[1], 30_000, 100);

      for (const s of [a, aWantsB, aWantsAll, aWantsBUpper, aWantsBArray, aHeaderB]) {
        assert.equal(s.snapshots[0].advertiserId, A, 'starts in its own view');
      }
      // A refused initial view is told with `denied` once connected (an unusable one is simply ignored).
      for (const s of [aWantsB, aWantsAll, aWantsBUpper]) {
        await eventually('denied for the refused handshake view', async () => s.denied.length === 1, 5_000, 20);
      }

      // Joins: every spelling of B, all advertisers, and non-string shapes.
      const attempts: unknown[] = [B, B.toUpperCase(), ` ${B}`, `${B} `, `${B}\u0000`, `${B}\n`, 'ADMIN', null, [B], { advertiserId: B }, { toString: B },
        `${A}' OR '1'='1`, 42, true, `advertiser:${B}`];
      for (const v of attempts) {
        const r = await a.join(v);
        assert.equal(r.ok, false, `join ${JSON.stringify(v)} was accepted`);
        // A refusal, not a failure of the server's join handler.
        assert.match((r as { message: string }).message, /not allowed|must be an advertiser id|only an admin/, `join ${JSON.stringify(v)}`);
      }
      await eventually('a denied event per refused join', async () => a.denied.length === attempts.length, 5_000, 20)
        .catch(() => assert.fail(`denied: ${JSON.stringify(a.denied)}`));
      assert.equal(a.snapshots.length, 1, 'a refused join sends no snapshot');
      // A's own view can still be joined (and gives only A).
      assert.deepEqual(await a.join(A), { ok: true });
      await eventually('snapshot after joining A', async () => a.snapshots.length === 2, 5_000, 20);

      // Fresh traffic for B (and a little for A) while everyone is connected.
      await ingest(events(B, B_CMPS[0], EXTRA_B, B_COST));
      addBNumbers([B_IMPS[0] + EXTRA_B, B_IMPS[1]]);
      await ingest(events(A, A_CMP, 3, A_COST));
      await eventually('admin sees the new B events live', async () => liveB() === B_IMPS[0] + EXTRA_B + B_IMPS[1], 30_000, 100);
      await sleep(1_500); // a few more flushes

      const aSpies = [a, aWantsB, aWantsAll, aWantsBUpper, aWantsBArray, aHeaderB];
      for (const s of aSpies) {
        for (const snap of s.snapshots) assert.equal(snap.advertiserId, A);
        for (const u of s.updates) assert.equal(u.advertiserId, A);
        const rowsAdv = new Set([...s.snapshots.flatMap((x) => x.rows), ...s.updates.flatMap((x) => x.rows)].map((r) => r.advertiserId));
        assert.ok([...rowsAdv].every((x) => x === A), `rows of ${[...rowsAdv].join(', ')}`);
        const leaked = s.raw.flatMap((t) => leaks(t));
        assert.deepEqual(leaked, [], 'nothing of B in any snapshot or update');
        // A refusal may repeat the id the client itself asked for, but nothing else of B.
        const deniedLeaks = s.denied.flatMap((d) => leaks(d.message).filter((x) => x !== B.toLowerCase()));
        assert.deepEqual(deniedLeaks, [], 'nothing of B in a denied message');
      }
      // A's clients did get live updates of A: the feed was flowing to them.
      await eventually('A sees its own new events', async () => aSpies.every((s) => s.updates.some((u) => u.rows.some((r) => r.advertiserId === A))), 10_000, 50);
      const adminSaw = leaks(admin.raw.join('\n'));
      assert.ok(adminSaw.includes(B.toLowerCase()) && adminSaw.includes(String(B_IMPS[0] + EXTRA_B)), `control: the admin payloads hold B (${adminSaw.join(', ')})`);
    } finally {
      for (const s of spies) s.close();
    }
  });

  it('injection-shaped and malformed values in every parameter: 400 naming it, and none reaches ClickHouse', async () => {
    const validCounts: Record<string, string> = {
      advertiser_id: A, campaign_id: A_CMP, from: String(dayStart), to: String(dayStart + 86_400_000), granularity: 'hour',
    };
    const validBilling: Record<string, string> = { advertiser_id: A, from: billingFrom, to: billingTo, granularity: 'day', format: 'json' };
    interface Probe { path: string; token: string; query: string; parameter: string; markers: string[] }
    const probes: Probe[] = [];
    const allMarkers: string[] = [];
    const marker = () => {
      const m = `zz_inj_${crypto.randomBytes(5).toString('hex')}`;
      allMarkers.push(m);
      return m;
    };
    const hostile = (m: string): string[] => [
      `${m}'`, `'${m}`, `${m}"`, `${m}' OR 1=1 --`, `' OR '1'='1' -- ${m}`, `${m}' OR advertiser_id != '`, `${m}\\`, `${m}\\'`, `${m}\\\\''`,
      `${m}/* */`, `/*${m}*/`, `${m}'/**/OR/**/1=1#`, `${m}'; DROP TABLE impression_counts; --`, `${m}; DROP TABLE api_tokens`,
      `${m}') UNION ALL SELECT * FROM system.tables --`, `${m}\u0000`, `\u0000${m}`, `${m}\u0000' OR 1=1`, `${m}${'A'.repeat(10_240)}`,
      `${m}${'-'.repeat(10_240)}`, `${m}-ädv`, `${m}\u202e`, `${m}\uff07 OR 1=1`, `${m}😀`, `${m}\r\nSELECT 1`, `${m}\t`, ` ${m}`, `${m} `,
      `${m}%`, `${m}%27`, `["${m}"]`, `{"$ne":"${m}"}`, `${m}","x`, `${m}) OR (1=1`, `${m}\`x\``, `$${m}$`, `${m}?`, `${m}&x=1`,
    ];
    const add = (path: string, base: Record<string, string>, param: string, value: string, markers: string[], token = tok.admin) => {
      probes.push({ path, token, query: qs(Object.entries({ ...base, [param]: value })), parameter: param, markers });
    };
    const routes: Array<[string, Record<string, string>]> = [
      ['/api/v1/counts', validCounts], ['/api/v1/campaigns', { advertiser_id: A }], ['/api/v1/billing/export', validBilling],
    ];
    for (const [path, valid] of routes) {
      for (const param of Object.keys(valid)) {
        const m = marker();
        for (const v of hostile(m)) add(path, valid, param, v, [m]);
        // The same for the advertiser's own token (validation comes before the scope check).
        if (param === 'advertiser_id') {
          const ma = marker();
          for (const v of hostile(ma).slice(0, 12)) add(path, valid, param, v, [ma], tok.a);
        }
      }
    }

    // Dates that are not dates, with markers for what a lenient parser would have sent as a literal.
    const secLiteral = (ms: number) => `toDateTime(${Math.floor(ms / 1000)})`;
    const rndYear = () => 2070 + crypto.randomInt(29);
    const pad = (n: number) => String(n).padStart(2, '0');
    const badDates = (): Array<[string, string[]]> => {
      const y = rndYear();
      const mo = 1 + crypto.randomInt(12);
      const [h, mi, s] = [crypto.randomInt(24), crypto.randomInt(60), crypto.randomInt(60)];
      const lenient = (yy: number, mm: number, dd: number, hh: number) => [secLiteral(Date.UTC(yy, mm - 1, dd, hh, mi, s))];
      return [
        [`${y}-02-30T${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, 2, 30, h)],
        [`${y}-${pad(mo)}-15T24:${pad(mi)}:${pad(s)}Z`, lenient(y, mo, 15, 24)],
        [`${y}-${pad(mo)}-32T${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, mo, 32, h)],
        [`${y}-13-10T${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, 13, 10, h)],
        [`${y}-${pad(mo)}-10T${pad(h)}:${pad(mi)}:${pad(s)}`, lenient(y, mo, 10, h)], // no zone
        [`${y}-${pad(mo)}-10T${pad(h)}:${pad(mi)}:${pad(s)}+25:00`, lenient(y, mo, 10, h)],
        [`${y}-${pad(mo)}-10 ${pad(h)}:${pad(mi)}:${pad(s)}Z`, lenient(y, mo, 10, h)],
        [`${Date.UTC(y, mo - 1, 10, h, mi, s)}.5`, lenient(y, mo, 10, h)],
        [`${Date.UTC(y, mo - 1, 10, h, mi, s) / 1000}e3`, lenient(y, mo, 10, h)],
        [`0x${Date.UTC(y, mo - 1, 10, h, mi, s).toString(16)}`, lenient(y, mo, 10, h)],
        [`-${Date.UTC(y, mo - 1, 10, h, mi, s)}`, lenient(y, mo, 10, h)],
        [`${Date.UTC(y, mo - 1, 10, h, mi, s)}0`, [secLiteral(Date.UTC(y, mo - 1, 10, h, mi, s) * 10)]], // beyond 2106
        ['2106-02-07T06:28:16Z', []], ['1969-12-31T23:59:59Z', []], ['yesterday', []], ['now()', []], ['NaN', []], ['', []],
      ];
    };
    for (const [path, valid] of [routes[0], routes[2]]) {
      for (const param of ['from', 'to']) {
        for (const [v, markers] of badDates()) {
          allMarkers.push(...markers);
          add(path, valid, param, v, markers);
        }
      }
    }
    // from > to, from = to, ranges over the limit: valid values each, unique times as markers.
    const rndSecond = () => 3_000_000_000 + crypto.randomInt(1_000_000_000);
    const rndDay = () => Date.UTC(rndYear(), 0, 1) + crypto.randomInt(300) * 86_400_000;
    const ranges: Array<[string, Record<string, string>, number, number, string]> = [];
    for (let i = 0; i < 2; i++) {
      const s = rndSecond() * 1000;
      ranges.push(['/api/v1/counts', validCounts, s + 3_600_000, s, 'from'], ['/api/v1/counts', validCounts, s + 5_000, s + 5_000, 'from'],
        ['/api/v1/counts', validCounts, s, s + 94 * 86_400_000, 'to'], ['/api/v1/counts', validCounts, s, s + 93 * 86_400_000 + 1_000, 'to']);
      const d = rndDay();
      ranges.push(['/api/v1/billing/export', validBilling, d + 86_400_000, d, 'from'], ['/api/v1/billing/export', validBilling, d, d, 'from'],
        ['/api/v1/billing/export', validBilling, d, d + 94 * 86_400_000, 'to'],
        ['/api/v1/billing/export', validBilling, d + 3_600_000 * 5, d + 86_400_000, 'from'], // not aligned to the day
        ['/api/v1/billing/export', validBilling, d, d + 86_400_000 + 1_000, 'to']);
    }
    for (const [path, valid, from, to, parameter] of ranges) {
      const markers = [secLiteral(from), secLiteral(to)];
      allMarkers.push(...markers);
      probes.push({ path, token: tok.admin, query: qs(Object.entries({ ...valid, from: String(from), to: String(to) })), parameter, markers });
    }
    // Unknown granularity and format values (without and with markers).
    const gm = marker();
    for (const g of ['HOUR', 'hourly', 'minute', 'week', 'window ', ' day', 'day\u0000', `hour${gm}`, `hour' OR 1=1 --${gm}`]) {
      add('/api/v1/counts', validCounts, 'granularity', g, g.includes(gm) ? [gm] : []);
      add('/api/v1/billing/export', validBilling, 'granularity', g, g.includes(gm) ? [gm] : []);
    }
    add('/api/v1/billing/export', validBilling, 'granularity', 'window', []); // valid for counts, not for billing
    for (const f of ['xml', 'CSV', 'Json', 'csv ', 'parquet', 'TabSeparated', `json${gm}`, `csv' FORMAT Native --${gm}`]) {
      add('/api/v1/billing/export', validBilling, 'format', f, f.includes(gm) ? [gm] : []);
    }
    // Repeated parameters, each parameter of each route.
    for (const [path, valid] of routes) {
      for (const param of Object.keys(valid)) {
        const m = marker();
        probes.push({ path, token: tok.admin, query: `${qs(Object.entries(valid))}&${enc(param)}=${enc(`${m}'`)}`, parameter: param, markers: [m] });
      }
    }

    const failures: string[] = [];
    await Promise.all(Array.from({ length: 8 }, async (_x, worker) => {
      for (let i = worker; i < probes.length; i += 8) {
        const p = probes[i];
        const what = `${p.path}?${p.query.slice(0, 160)}`;
        const a = await get(base, `${p.path}?${p.query}`, p.token);
        let body: ErrorShape;
        try {
          body = json<unknown>(a, what);
        } catch (err) {
          failures.push(String(err));
          continue;
        }
        if (a.status !== 400 || body.error?.status !== 400 || typeof body.error.message !== 'string' || body.error.message.length === 0
          || body.error.parameter !== p.parameter) {
          failures.push(`${what} → ${a.status} ${a.text.slice(0, 200)} (want 400 naming ${p.parameter})`);
        }
      }
    }));

    // Unknown parameters (hostile names and values) are ignored: 200, and they reach no SQL either.
    const ignored: string[] = [];
    for (const path of ['/api/v1/advertisers', '/api/v1/me', `/api/v1/campaigns`, `/api/v1/counts`]) {
      const m = marker();
      ignored.push(m);
      const query = `advertiser_id=${A}&${enc(`${m}' OR 1=1 --`)}=${enc(`${m}'; DROP TABLE impression_counts`)}&x${enc(m)}=${enc(`' OR '1'='1 ${m}`)}`;
      const a = await get(base, `${path}?${query}`, tok.a);
      if (a.status !== 200) failures.push(`${path} with unknown hostile parameters → ${a.status} ${a.text.slice(0, 200)}`);
    }
    process.stderr.write(`      [acl] ${probes.length} malformed probes, ${allMarkers.length} markers\n`);
    assert.deepEqual(failures, [], `${failures.length} of ${probes.length} probes failed:\n${failures.slice(0, 30).join('\n')}`);

    // Positive control in the same check: a legitimate request with a unique (valid) id does reach query_log.
    const hex = crypto.randomBytes(5).toString('hex');
    const ctrlId = `adv_ctrl_${hex}`;
    const ctrlSecond = rndSecond();
    // Escaping control: a campaign id equal to `cmp_lk_<hex>` except with X for each _. An unescaped
    // `_` (LIKE's any-character) would make the pattern for `cmp_lk_<hex>` match it.
    const lookalikeCampaign = `cmpXlkX${hex}`;
    assert.equal((await get(base, `/api/v1/counts?advertiser_id=${ctrlId}&campaign_id=${lookalikeCampaign}&from=${ctrlSecond * 1000}`, tok.admin)).status, 200);
    const checked = [ctrlId, lookalikeCampaign, secLiteral(ctrlSecond * 1000), `cmp_lk_${hex}`, ...allMarkers, ...ignored];
    let hits: number[] = [];
    await eventually('the control request in system.query_log', async () => {
      hits = await queryLogHits(ch, checked);
      return hits[0] > 0;
    }, 15_000, 500);
    assert.ok(hits[0] > 0 && hits[1] > 0 && hits[2] > 0, `control: legitimate values not found in query_log: ${hits.slice(0, 3).join(', ')}`);
    assert.equal(hits[3], 0, 'the LIKE pattern is escaped: _ matches only _, not the X of the look-alike');
    const reached = checked.slice(4).filter((_m, i) => hits[i + 4] > 0);
    assert.deepEqual(reached, [], `hostile values that reached ClickHouse: ${reached.join(', ')}`);
  });

  it('a revoked token: REST refused within about a second, its open socket disconnected', async () => {
    const victim = await store.create('acl victim', [`advertiser:${A}`]);
    const countsA = `/api/v1/counts?advertiser_id=${A}`;
    assert.equal((await get(base, countsA, victim.token)).status, 200);
    const s = new Spy(base, { token: victim.token });
    try {
      await s.ready();
      assert.equal(s.snapshots[0].advertiserId, A);
      // Keep the API's token cache warm right up to the revocation.
      assert.equal((await get(base, '/api/v1/me', victim.token)).status, 200);

      assert.equal(await store.revoke(victim.id), 'revoked');
      const revokedAt = Date.now();
      let refusedAfter = -1;
      while (Date.now() - revokedAt < 5_000) {
        const a = await get(base, countsA, victim.token);
        if (a.status === 401) {
          refusedAfter = Date.now() - revokedAt;
          break;
        }
        assert.equal(a.status, 200, a.text.slice(0, 200));
        await sleep(25);
      }
      process.stderr.write(`      [acl] revoked token refused by REST after ${refusedAfter} ms\n`);
      assert.ok(refusedAfter >= 0 && refusedAfter <= 2_000, `REST refused after ${refusedAfter} ms`);
      // Stays refused, on every route.
      for (const path of [countsA, `/api/v1/campaigns`, '/api/v1/advertisers', '/api/v1/me', `/api/v1/billing/export?advertiser_id=${A}&from=${billingFrom}&to=${billingTo}`,
        countsA, countsA, countsA]) {
        const a = await get(base, path, victim.token);
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
      const again = new Spy(base, { token: victim.token });
      try {
        await eventually('connect_error', async () => again.connectError !== undefined, 5_000, 20);
        assert.equal(again.connectError?.message, 'unauthorized');
        assert.equal(again.snapshots.length, 0);
      } finally {
        again.close();
      }
      assert.equal((await get(base, countsA, tok.a)).status, 200);
    } finally {
      s.close();
    }
  });
});
