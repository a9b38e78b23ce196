/**
 * Shared by the access-control tests (access-control*.test.ts): `tally api` as a child process on a
 * fresh sandbox with tokens from the TokenStore, optionally with an aggregator and a sink and two
 * advertisers' distinctive counts already in ClickHouse; raw HTTP reads; a socket.io client that
 * records everything it receives; and a detector for anything of advertiser B in a text.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { io, type Socket } from 'socket.io-client';
import type { CountsResponse, IngestResponse } from '../../server/src/contracts/api-types.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import type { ClientToServerEvents, LiveSnapshot, LiveUpdate, ServerToClientEvents } from '../../server/src/contracts/live-protocol.js';
import { freePort, createSandbox, eventually, RoleProcess, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';

export interface ErrorShape {
  error?: { status: number; message: string; parameter?: string };
}

export interface RawAnswer {
  status: number;
  text: string;
}

/** GET with a raw query string (sent as written: no re-encoding, so padding and %00 tricks arrive intact). */
export async function get(base: string, pathAndQuery: string, token?: string): Promise<RawAnswer> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + pathAndQuery, { headers, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, text: await res.text() };
}

export function json<T>(a: RawAnswer, what: string): T & ErrorShape {
  try {
    return JSON.parse(a.text) as T & ErrorShape;
  } catch {
    throw new Error(`${what}: status ${a.status}, body is not JSON: ${a.text.slice(0, 200)}`);
  }
}

type Ack = { ok: true } | { ok: false; message: string };

/** A socket.io client that records everything it receives, raw. */
export class Spy {
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

/** Distinctive counts: B's campaigns get 1453 and 2917 impressions at 7919 micros each; A 211 at 1000. */
export const B_IMPS = [1453, 2917];
export const B_COST = 7919;
export const A_IMPS = 211;
export const A_COST = 1000;
/** B's impressions sent later, while sockets watch. */
export const EXTRA_B = 13;

/**
 * One sandbox with `tally api` (rate limits out of the way), an admin, an ingest and an advertiser-A
 * token; seeded: also an aggregator and a sink, and A's and B's events counted in ClickHouse.
 */
export class AccessControlWorld {
  readonly run = crypto.randomBytes(3).toString('hex');
  readonly A = `acl${this.run}-adv-a`;
  readonly B = `acl${this.run}-adv-b`;
  readonly A_CMP = `acl${this.run}-cmp-a1`;
  readonly B_CMPS = [`acl${this.run}-secret-b1`, `acl${this.run}-secret-b2`];
  /** When the seeded events happened; the billing day that holds them. */
  /** At a window start (the default 60 s window), so every event (ts + 0..999 ms) falls in one window row per campaign and its count appears whole. */
  readonly eventTs = Math.floor((Date.now() - 90_000) / 60_000) * 60_000;
  readonly dayStart = Math.floor(this.eventTs / 86_400_000) * 86_400_000;
  readonly billingFrom = new Date(this.dayStart).toISOString().slice(0, 10);
  readonly billingTo = new Date(this.dayStart + 86_400_000).toISOString().slice(0, 10);
  readonly tok = { admin: '', ingest: '', a: '' };
  sb: Sandbox | undefined;
  pipeline: Pipeline | undefined;
  api: RoleProcess | undefined;
  base = '';
  private ch: ClickHouseClient | undefined;
  private store: TokenStore | undefined;
  private seq = 0;

  /** Every string that would betray B: ids (any case) and numbers (standing alone, not inside longer digit runs). */
  private readonly bSecrets = {
    ids: [this.B, ...this.B_CMPS].map((s) => s.toLowerCase()),
    numbers: new Set<string>(),
  };

  constructor() {
    this.addBNumbers(B_IMPS);
  }

  /** A world for the enclosing describe: started in its before(), stopped in its after(). */
  static forSuite(opts: { seeded: boolean }): AccessControlWorld {
    const w = new AccessControlWorld();
    before(async function () {
      this.timeout(150_000);
      await w.start(opts);
    });
    after(async function () {
      this.timeout(60_000);
      await w.stop();
    });
    return w;
  }

  async start(opts: { seeded: boolean }): Promise<void> {
    const sb = await createSandbox('acl');
    this.sb = sb;
    this.ch = createClickHouse(sb.config);
    this.store = TokenStore.forClickHouse(this.ch, sb.config.clickhouse.database);
    this.tok.admin = (await this.store.create('acl admin', ['admin'])).token;
    this.tok.ingest = (await this.store.create('acl ingest', ['ingest'])).token;
    this.tok.a = (await this.store.create('acl advertiser A', [`advertiser:${this.A}`])).token;
    if (opts.seeded) {
      this.pipeline = new Pipeline(sb);
      this.pipeline.startAggregator();
      this.pipeline.startSink();
    }
    const port = await freePort();
    this.base = `http://127.0.0.1:${port}`;
    // Rate limits out of the way: hundreds of probes per minute are the point here, not the limiter.
    const api = new RoleProcess('api', {
      ...sb.env, TALLY_HTTP_PORT: String(port), TALLY_API_RATE_LIMIT_PER_MIN: '100000', TALLY_AUTH_FAILURE_LIMIT_PER_MIN: '100000',
    }, ['--no-web-build']);
    this.api = api;
    // Ready with its live feed: a socket opened before the feed is attached is refused.
    await eventually('api ready with its live feed', async () => {
      if (!api.alive) throw new Error(`api exited:\n${api.log()}`);
      const r = await fetch(`${this.base}/readyz`);
      return r.ok && ((await r.json()) as { liveFeed: boolean }).liveFeed;
    }, 90_000, 200);
    if (!opts.seeded) return;

    await this.ingest(this.events(this.A, this.A_CMP, A_IMPS, A_COST));
    await this.ingest(this.events(this.B, this.B_CMPS[0], B_IMPS[0], B_COST));
    await this.ingest(this.events(this.B, this.B_CMPS[1], B_IMPS[1], B_COST));
    await eventually('A and B counted in ClickHouse', async () => (await this.counted(this.A)) === A_IMPS && (await this.counted(this.B)) === B_IMPS[0] + B_IMPS[1], 90_000, 250);
  }

  /** The sandbox's ClickHouse (after start). */
  get clickhouse(): ClickHouseClient {
    if (this.ch === undefined) throw new Error('the access-control world is not started');
    return this.ch;
  }

  /** The sandbox's token store (after start). */
  get tokenStore(): TokenStore {
    if (this.store === undefined) throw new Error('the access-control world is not started');
    return this.store;
  }

  async stop(): Promise<void> {
    await Promise.all([this.api?.stop(), this.pipeline?.stopAll()]);
    await this.ch?.close();
    await this.sb?.cleanup();
  }

  /** B's counts after more of its impressions: numbers the detector must now also look for. */
  addBNumbers(impsPerCampaign: number[]): void {
    const spends = impsPerCampaign.map((n) => n * B_COST);
    const totalImps = impsPerCampaign.reduce((x, y) => x + y, 0);
    const totalSpend = spends.reduce((x, y) => x + y, 0);
    for (const n of [...impsPerCampaign, ...spends, totalImps, totalSpend]) {
      this.bSecrets.numbers.add(String(n));
      // Spend in currency units, as the billing export writes it (decimal string, no trailing zeros needed to match).
      this.bSecrets.numbers.add((n / 1e6).toFixed(6).replace(/0+$/, '').replace(/\.$/, ''));
    }
  }

  /** What of B the text holds: its ids (lower-cased) and its numbers. */
  leaks(text: string): string[] {
    const lower = text.toLowerCase();
    const found = this.bSecrets.ids.filter((id) => lower.includes(id));
    for (const n of this.bSecrets.numbers) {
      if (n.length >= 4 && new RegExp(`(?<![0-9.])${n.replace('.', '\\.')}(?![0-9])`).test(text)) found.push(n);
    }
    return found;
  }

  /** `n` impressions of one campaign as NDJSON, fresh ids, all in the seeded day. */
  events(adv: string, campaign: string, n: number, cost: number): string {
    const lines: string[] = [];
    for (let i = 0; i < n; i++) {
      this.seq++;
      lines.push(JSON.stringify({
        impression_id: `acl${this.run}-imp-${this.seq}`, ts: this.eventTs + (this.seq % 1000), advertiser_id: adv, campaign_id: campaign, cost_micros: cost,
      }));
    }
    return lines.join('\n');
  }

  async ingest(body: string): Promise<void> {
    const res = await fetch(`${this.base}/api/v1/impressions`, {
      method: 'POST', headers: { authorization: `Bearer ${this.tok.ingest}`, 'content-type': 'application/x-ndjson' }, body,
    });
    const r = (await res.json()) as IngestResponse;
    assert.equal(res.status, 202, JSON.stringify(r).slice(0, 300));
    assert.equal(r.rejected, 0);
  }

  private async counted(adv: string): Promise<number> {
    const a = await get(this.base, `/api/v1/counts?advertiser_id=${adv}&from=${this.dayStart}&to=${this.dayStart + 86_400_000}&granularity=day`, this.tok.admin);
    return a.status === 200 ? json<CountsResponse>(a, 'counts').totals.impressions : -1;
  }
}
