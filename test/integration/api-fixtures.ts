/**
 * Shared by the REST API tests (api*.test.ts): `tally api` as a process on a free port, the
 * tokens and advertiser ids of one run, impressions to post, and JSON calls with their checks.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { TokenStore } from '../../server/src/auth/index.js';
import { eventually, freePort, RoleProcess } from '../kit/harness.js';

export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T & { error?: { status: number; message: string; parameter?: string } };
}

/** A GET (or a POST when there is a body) whose answer must be JSON. */
export async function call<T = Record<string, unknown>>(base: string, path: string, opts: { token?: string; body?: string; type?: string } = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.type !== undefined) headers['content-type'] = opts.type;
  const res = await fetch(base + path, { method: opts.body === undefined ? 'GET' : 'POST', headers, body: opts.body, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body: Answer<T>['body'];
  try {
    body = JSON.parse(text) as Answer<T>['body'];
  } catch {
    throw new Error(`${path}: status ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, headers: res.headers, body };
}

/** The answer is an error of this status in the API's JSON shape, naming `parameter` (or none). */
export function assertError(a: Answer<unknown>, status: number, parameter?: string, what = ''): void {
  assert.equal(a.status, status, `${what}: ${JSON.stringify(a.body)}`);
  assert.ok(a.body.error, `${what}: no error object`);
  assert.equal(a.body.error.status, status, what);
  assert.equal(typeof a.body.error.message, 'string', what);
  assert.equal(a.body.error.parameter, parameter, what);
}

/** Until the process answers /healthz (fails at once if it exits). */
export async function waitHealthy(base: string, proc: RoleProcess): Promise<void> {
  await eventually(`${proc.role} /healthz`, async () => {
    if (!proc.alive) throw new Error(`api exited:\n${proc.log()}`);
    return (await fetch(`${base}/healthz`)).ok;
  }, 60_000, 200);
}

/** `tally api` (no web build) with this environment on a free port, once it answers /healthz. */
export async function startApi(env: NodeJS.ProcessEnv): Promise<{ api: RoleProcess; base: string; port: number }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const api = new RoleProcess('api', { ...env, TALLY_HTTP_PORT: String(port) }, ['--no-web-build']);
  await waitHealthy(base, api);
  return { api, base, port };
}

export interface Event {
  impression_id: string;
  ts: number | string;
  advertiser_id: string;
  campaign_id: string;
  cost_micros?: number;
  device?: string;
}

export const CAMPAIGNS = ['cmp-a', 'cmp-b', 'cmp-c'];

/** The advertiser ids of one run (P is their prefix). ADV1_UPPER differs from ADV1 only in case: never merged with it. */
export function runAdvertisers(): { P: string; ADV1: string; ADV2: string; ADV1_UPPER: string } {
  const P = `itapi${crypto.randomBytes(3).toString('hex')}-`;
  return { P, ADV1: `${P}adv-1`, ADV2: `${P}adv-2`, ADV1_UPPER: `${P}ADV-1` };
}

/** Makes impressions with fresh ids under P, stamped within the ten minutes before now0, campaigns in turn, every 7th without a cost. */
export function eventMaker(P: string, now0: number): (adv: string, over?: Partial<Event>) => Event {
  let seq = 0;
  return (adv, over = {}) => {
    seq++;
    const e: Event = {
      impression_id: `${P}imp-${seq}`,
      // Within the last ten minutes: windows closed or open, always inside the dedup horizon.
      ts: now0 - Math.floor(Math.random() * 600_000),
      advertiser_id: adv,
      campaign_id: CAMPAIGNS[seq % CAMPAIGNS.length],
      device: 'mobile',
    };
    if (seq % 7 !== 0) e.cost_micros = (seq * 37) % 5000;
    return { ...e, ...over };
  };
}

export type Tokens = Record<'admin' | 'ingest' | 'adv1' | 'adv2' | 'both', string>;

/** An admin, an ingest-only token, one per advertiser, and one for both advertisers that may also ingest. */
export async function createTokens(store: TokenStore, adv1: string, adv2: string): Promise<Tokens> {
  return {
    admin: (await store.create('it admin', ['admin'])).token,
    ingest: (await store.create('it ingest', ['ingest'])).token,
    adv1: (await store.create('it adv1', [`advertiser:${adv1}`])).token,
    adv2: (await store.create('it adv2', [`advertiser:${adv2}`])).token,
    both: (await store.create('it both', [`advertiser:${adv1}`, `advertiser:${adv2}`, 'ingest'])).token,
  };
}
