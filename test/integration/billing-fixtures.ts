/**
 * Shared by the billing export tests (billing*.test.ts): the billing router in a small express app
 * behind the API's auth middleware with a fake token verifier, and readers of what it exports.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import express, { type ErrorRequestHandler } from 'express';
import { ApiMetrics } from '../../server/src/api/index.js';
import { authenticate, requireAuthenticated } from '../../server/src/api/auth-middleware.js';
import { ApiError, sendError } from '../../server/src/http/index.js';
import { AuthFailureLimiter, type Principal, type TokenVerifier } from '../../server/src/auth/index.js';
import { billingRouter, isoUtc } from '../../server/src/billing/index.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { createLogger } from '../../server/src/observability/index.js';
import type { GroundTruth } from '../../server/src/tools/index.js';

export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
}

/** The billing routes behind auth on a loopback port; tokens are whatever `principals` maps. */
export class BillingServer {
  private constructor(readonly server: http.Server, readonly base: string) {}

  static async start(config: TallyConfig, ch: ClickHouseClient, principals: Record<string, Principal>): Promise<BillingServer> {
    const verifier: TokenVerifier = { verify: (token) => Promise.resolve(principals[token]) };
    const log = createLogger('billing-test', 'warn');
    const app = express();
    app.set('query parser', 'simple');
    app.use('/api/v1', authenticate(verifier, new AuthFailureLimiter(10_000)), requireAuthenticated(new ApiMetrics()), billingRouter({ config, clickhouse: ch, log }));
    const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
      if (err instanceof ApiError) return sendError(res, err);
      log.error({ err }, 'test.internal_error');
      res.status(500).json({ error: { status: 500, message: 'internal server error' } });
    };
    app.use(onError);
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new BillingServer(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  }

  /** GET with the body consumed by `onChunk` (default: kept). */
  get(pathAndQuery: string, token?: string, onChunk?: (b: Buffer) => void): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${this.base}${pathAndQuery}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => (onChunk ? onChunk(c) : chunks.push(c)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The export route with these query parameters. */
export function exportUrl(q: Record<string, string>): string {
  return `/api/v1/billing/export?${new URLSearchParams(q).toString()}`;
}

export interface ParsedCsv {
  /** Comment lines by key; repeated keys (late_unbillable_from, lineage) in `lists`. */
  meta: Record<string, string>;
  lists: Record<string, string[]>;
  rows: string[][];
  total: string[];
  sha256: string;
}

/** A CSV statement, checked as it is read: header columns, total line, sha256 trailer of the bytes before it. */
export function parseCsv(text: string): ParsedCsv {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  const meta: Record<string, string> = {};
  const lists: Record<string, string[]> = {};
  const data: string[][] = [];
  let sha256 = '';
  for (const [i, line] of lines.entries()) {
    if (line.startsWith('# sha256: ')) {
      assert.equal(i, lines.length - 1, 'sha256 is the last line');
      sha256 = line.slice('# sha256: '.length);
    } else if (line.startsWith('# ')) {
      const m = /^# ([a-z_]+): (.*)$/.exec(line);
      if (m) {
        meta[m[1]] = m[2];
        (lists[m[1]] ??= []).push(m[2]);
      }
    } else {
      data.push(line.split(','));
    }
  }
  assert.deepEqual(data[0], ['period_start', 'advertiser_id', 'campaign_id', 'impressions', 'spend_micros', 'spend', 'duplicates_removed', 'maturity']);
  const total = data[data.length - 1];
  assert.equal(total[0], 'total');
  const digest = crypto.createHash('sha256').update(text.slice(0, text.lastIndexOf('# sha256: '))).digest('hex');
  assert.equal(sha256, digest, 'the trailer is the sha256 of everything before it');
  return { meta, lists, rows: data.slice(1, -1), total, sha256 };
}

/** The truth aggregated like an export: [period_start, campaign, impressions, spend_micros] in output order. */
export function expectedRows(truth: GroundTruth, advertiserId: string, from: number, to: number, periodMs: number): string[][] {
  const acc = new Map<string, { period: number; campaign: string; impressions: bigint; spend: bigint }>();
  for (const r of truth.rows) {
    if (r.advertiserId !== advertiserId || r.windowStart < from || r.windowStart >= to) continue;
    const period = Math.floor(r.windowStart / periodMs) * periodMs;
    const key = `${String(period).padStart(16, '0')}|${r.campaignId}`;
    const a = acc.get(key) ?? { period, campaign: r.campaignId, impressions: 0n, spend: 0n };
    a.impressions += BigInt(r.impressions);
    a.spend += BigInt(r.spendMicros);
    acc.set(key, a);
  }
  return [...acc.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([, a]) => [isoUtc(a.period), a.campaign, a.impressions.toString(), a.spend.toString()]);
}
