/**
 * Shared by the live feed tests (live-feed*.test.ts): an http server in the test with
 * attachLiveFeed and a map of tokens, dashboard-like socket.io clients, and exact comparisons of
 * what a client holds with ClickHouse FINAL and the generator's truth.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { io, type Socket } from 'socket.io-client';
import type { Principal, TokenVerifier } from '../../server/src/auth/principal.js';
import { createClickHouse, identifier, queryRows, stringLiteral } from '../../server/src/clickhouse/index.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { attachLiveFeed, type LiveFeed } from '../../server/src/live/index.js';
import type { ClientToServerEvents, LiveSnapshot, LiveUpdate, LiveWindowRow, ServerToClientEvents } from '../../server/src/contracts/live-protocol.js';
import { createLogger } from '../../server/src/observability/index.js';
import type { GroundTruth } from '../../server/src/tools/index.js';
import { eventually, type Sandbox } from '../kit/harness.js';
import type { Pipeline } from '../kit/pipeline.js';

/** Tokens the test hands out and takes back (a deleted token is a revoked one). */
export class MapVerifier implements TokenVerifier {
  readonly tokens = new Map<string, Principal>();
  async verify(token: string): Promise<Principal | undefined> {
    return this.tokens.get(token);
  }
}

const rowKey = (r: { windowStart: number; advertiserId: string; campaignId: string }) => `${r.windowStart}|${r.advertiserId}|${r.campaignId}`;

/** A dashboard-like client: holds the rows of its view, replaced by snapshots, patched by updates. */
export class LiveClient {
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  readonly rows = new Map<string, LiveWindowRow>();
  readonly snapshots: LiveSnapshot[] = [];
  readonly updates: Array<{ receivedAt: number; update: LiveUpdate }> = [];
  readonly denied: Array<{ at: number; message: string }> = [];
  readonly advertisersSeen = new Set<string>();
  /** Values that went down for the same view (must never happen). */
  readonly wentBack: string[] = [];
  readonly firstSeen = new Map<string, number>();
  disconnectedAt: number | undefined;
  disconnectReason: string | undefined;
  private view: string | null | undefined;

  constructor(url: string, token: string, extraAuth: Record<string, unknown> = {}) {
    this.socket = io(url, { path: '/socket.io', auth: { token, ...extraAuth }, reconnection: false, transports: ['websocket'] });
    this.socket.on('snapshot', (s) => {
      this.snapshots.push(s);
      if (s.advertiserId !== this.view) this.rows.clear();
      this.view = s.advertiserId;
      for (const r of s.rows) this.put(r);
    });
    this.socket.on('update', (u) => {
      this.updates.push({ receivedAt: Date.now(), update: u });
      for (const r of u.rows) this.put(r);
    });
    this.socket.on('denied', (e) => this.denied.push({ at: Date.now(), message: e.message }));
    this.socket.on('disconnect', (reason) => {
      this.disconnectedAt = Date.now();
      this.disconnectReason = reason;
    });
  }

  private put(r: LiveWindowRow): void {
    this.advertisersSeen.add(r.advertiserId);
    const k = rowKey(r);
    const held = this.rows.get(k);
    if (held && (r.impressions < held.impressions || r.spendMicros < held.spendMicros)) this.wentBack.push(`${k}: ${held.impressions} → ${r.impressions}`);
    if (!this.firstSeen.has(k)) this.firstSeen.set(k, Date.now());
    this.rows.set(k, r);
  }

  ready(timeoutMs = 15_000): Promise<void> {
    return eventually('first snapshot', async () => this.snapshots.length > 0, timeoutMs, 20);
  }

  join(advertiserId: string | null): Promise<{ ok: true } | { ok: false; message: string }> {
    return new Promise((resolve) => this.socket.emit('join', advertiserId, resolve));
  }

  /** Per (window, campaign) impressions/spend as decimal strings, for an exact comparison. */
  totals(advertiserId: string): Map<string, string> {
    const out = new Map<string, string>();
    for (const r of this.rows.values()) if (r.advertiserId === advertiserId) out.set(`${r.windowStart}|${r.campaignId}`, `${r.impressions}/${r.spendMicros}`);
    return out;
  }

  close(): void {
    this.socket.close();
  }
}

/** Per (window, campaign) impressions/spend of one advertiser in the truth, as LiveClient.totals gives them. */
export function truthTotals(truth: GroundTruth, advertiserId: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of truth.rows) if (r.advertiserId === advertiserId) out.set(`${r.windowStart}|${r.campaignId}`, `${r.impressions}/${r.spendMicros}`);
  return out;
}

/** The same from ClickHouse FINAL. */
export async function clickhouseTotals(config: TallyConfig, advertiserId: string): Promise<Map<string, string>> {
  const ch = createClickHouse(config);
  try {
    const rows = await queryRows<{ ws: string; campaign_id: string; imps: string; spend: string }>(ch,
      `SELECT toUnixTimestamp(window_start) * 1000 AS ws, campaign_id, sum(impressions) AS imps, sum(spend_micros) AS spend `
      + `FROM ${identifier(config.clickhouse.database)}.impression_counts FINAL WHERE advertiser_id = ${stringLiteral(advertiserId)} `
      + 'GROUP BY ws, campaign_id');
    return new Map(rows.map((r) => [`${Number(r.ws)}|${r.campaign_id}`, `${BigInt(r.imps)}/${BigInt(r.spend)}`]));
  } finally {
    await ch.close();
  }
}

export function sameMap(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** What differs, for a failure message. */
export function diffMaps(actual: Map<string, string>, expected: Map<string, string>): string {
  const lines: string[] = [];
  for (const k of new Set([...actual.keys(), ...expected.keys()])) {
    if (actual.get(k) !== expected.get(k)) lines.push(`  ${k}: got ${actual.get(k) ?? '-'} want ${expected.get(k) ?? '-'}`);
  }
  return `${lines.length} differences (of ${expected.size}):\n${lines.slice(0, 15).join('\n')}`;
}

/** Smallest span (ms) covered by 5 consecutive timestamps: ≥ 1000 means at most 4 in any second. */
export function minSpanOfFive(ts: number[]): number {
  let min = Infinity;
  for (let i = 0; i + 4 < ts.length; i++) min = Math.min(min, ts[i + 4] - ts[i]);
  return min;
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** One test's sandbox, pipeline, http server with its live feed, and clients; `close()` (afterEach/after) ends them all. */
export class LiveFeedBed {
  sb: Sandbox | undefined;
  pipeline: Pipeline | undefined;
  readonly verifier = new MapVerifier();
  readonly clients: LiveClient[] = [];
  private server: http.Server | undefined;
  private attached: LiveFeed | undefined;
  private readonly log = createLogger('live-test', process.env.LOG_LEVEL ?? 'warn');

  /** An http server on a loopback port with the live feed attached; resolves with its URL. */
  async serve(config: TallyConfig): Promise<string> {
    this.server = http.createServer((_req, res) => { res.writeHead(404); res.end(); });
    const url = await listen(this.server);
    this.attached = await attachLiveFeed(this.server, { config, verifier: this.verifier, log: this.log });
    return url;
  }

  get feed(): LiveFeed {
    if (this.attached === undefined) throw new Error('serve() first');
    return this.attached;
  }

  client(url: string, token: string): LiveClient {
    const c = new LiveClient(url, token);
    this.clients.push(c);
    return c;
  }

  async close(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    await this.attached?.close();
    this.attached = undefined;
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.server = undefined;
    await this.pipeline?.stopAll();
    this.pipeline = undefined;
    await this.sb?.cleanup();
    this.sb = undefined;
  }
}
