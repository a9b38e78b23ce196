/** The express app around fakes (token verifier, ClickHouse client, event sink), shared by the api-app unit tests. */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { createApiApp, type ApiDeps, type PipelineStatus, type Readiness } from '../../server/src/api/index.js';
import type { Principal, TokenVerifier } from '../../server/src/auth/index.js';
import { loadConfig } from '../../server/src/config/index.js';
import { KafkaUnavailableError, type EventSink } from '../../server/src/ingest/index.js';
import type { OutgoingRecord } from '../../server/src/kafka/index.js';
import { createLogger } from '../../server/src/observability/index.js';
export const TOKENS: Record<string, Principal> = {
  admin: { tokenId: 'a00000000001', name: 'admin', scopes: ['admin'] },
  ingest: { tokenId: 'a00000000002', name: 'ingest', scopes: ['ingest'] },
  adv1: { tokenId: 'a00000000003', name: 'adv1', scopes: ['advertiser:adv-1'] },
  adv12: { tokenId: 'a00000000004', name: 'adv12', scopes: ['advertiser:adv-1', 'advertiser:adv-2'] },
  ingestA: { tokenId: 'a00000000005', name: 'ingestA', scopes: ['ingest:adv-1'] },
};

export const econnrefused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:18123'), { code: 'ECONNREFUSED' });

export class FakeVerifier implements TokenVerifier {
  down = false;
  async verify(token: string): Promise<Principal | undefined> {
    if (this.down) throw econnrefused();
    return TOKENS[token];
  }

  /** The fake's tokens count as seen valid before (the real store remembers verified ids). */
  recentlyValid(token: string): boolean {
    return token in TOKENS;
  }
}

export class FakeClickHouse {
  queries: string[] = [];
  mode: 'ok' | 'down' | 'bug' = 'ok';
  rows: unknown[] = [];
  /** Answers to the ledger frontier query (period closes and watermarks). */
  frontier: unknown[] = [];
  async query(params: { query: string }): Promise<{ json: () => Promise<unknown[]> }> {
    this.queries.push(params.query);
    if (this.mode === 'down') throw econnrefused();
    if (this.mode === 'bug') throw Object.assign(new Error('Syntax error: secret internals'), { code: '62' });
    const rows = /period_closes/.test(params.query) ? this.frontier : this.rows;
    return { json: async () => rows };
  }
}

export class FakeSink implements EventSink {
  records: OutgoingRecord[] = [];
  mode: 'ok' | 'down' | 'slow' = 'ok';
  async send(records: OutgoingRecord[]): Promise<void> {
    if (this.mode === 'down') throw new KafkaUnavailableError('Kafka is unreachable');
    if (this.mode === 'slow') await new Promise((r) => setTimeout(r, 3000));
    this.records.push(...records);
  }
}

export interface Harness {
  base: string;
  ch: FakeClickHouse;
  sink: FakeSink;
  verifier: FakeVerifier;
  ready: Readiness;
  close: () => Promise<void>;
}

export async function start(env: Record<string, string> = {}, over: Partial<ApiDeps> = {}): Promise<Harness> {
  const config = loadConfig({ TALLY_HTTP_REQUEST_TIMEOUT_MS: '1500', ...env });
  const ch = new FakeClickHouse();
  const sink = new FakeSink();
  const verifier = new FakeVerifier();
  const h = { ready: { ready: true, kafka: true, clickhouse: true } };
  const status: PipelineStatus = {
    partitions: [], lastTransactionAgeMs: null, throughputPerSec: 0, duplicatesRemoved: 0, deadLetters: {},
    clickhouseReachable: true, exact: null, reconciliation: null, serverTime: 1,
  };
  const { app } = createApiApp({
    config, log: createLogger('test', 'silent'), verifier, clickhouse: ch as unknown as ClickHouseClient, ingest: sink,
    readiness: async () => h.ready, pipelineStatus: async () => status, ...over,
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base, ch, sink, verifier,
    get ready() { return h.ready; },
    set ready(r: Readiness) { h.ready = r; },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export async function call(base: string, path: string, opts: { token?: string; method?: string; body?: string | Buffer; type?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.type !== undefined) headers['content-type'] = opts.type;
  const payload = typeof opts.body === 'string' || opts.body === undefined ? opts.body : new Uint8Array(opts.body);
  const res = await fetch(base + path, { method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'), headers, body: payload });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, headers: res.headers, body };
}

export function assertError(a: Answer, status: number, parameter?: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  const err = a.body.error as { status: number; message: string; parameter?: string };
  assert.ok(err, `no error object in ${JSON.stringify(a.body)}`);
  assert.equal(err.status, status);
  assert.equal(typeof err.message, 'string');
  assert.equal(err.parameter, parameter);
}

export const event = (id: string, adv = 'adv-1') => ({ impression_id: id, ts: 1764150000123, advertiser_id: adv, campaign_id: 'cmp-1', cost_micros: 10 });
