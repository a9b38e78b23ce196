/**
 * The HTTP API as an express app (no listening, no I/O of its own: every dependency is passed in,
 * so tests can build it around fakes). Layout:
 *
 *   GET  /healthz                 process alive (no auth)
 *   GET  /readyz                  Kafka metadata + ClickHouse ping; 503 if either fails (no auth)
 *   GET  /metrics                 Prometheus; loopback clients without a token, others need an admin token
 *   /api/v1/*                     bearer token on every route (401 / 403), JSON errors
 *     POST /impressions           ingest (scope ingest, ingest:<advertiser id> or admin), per-token ingest rate limit;
 *                                 body bounded while inflating (server/src/ingest/read-body.ts), never parsed whole
 *     GET  /me, /counts, /breakdown, /dimensions, /campaigns, /advertisers, /billing/export, /pipeline (admin)
 *                                 per-token API rate limit
 *   everything else               the dashboard (web assets router, mounted last)
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import express, { type ErrorRequestHandler, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import type { Registry } from 'prom-client';
import { AuthFailureLimiter } from '../auth/auth-failure-limiter.js';
import { canIngest, canReadAdvertiser, isAdmin, readableAdvertisers, type TokenVerifier } from '../auth/principal.js';
import { billingRouter } from '../billing/index.js';
import type { TallyConfig } from '../config/index.js';
import { OTHER_VALUE, UNKNOWN_VALUE, type DimensionsResponse, type MeResponse, type PipelineStatus } from '../contracts/api-types.js';
import {
  ApiError, badRequest, errorBody, forbidden, isClickHouseUnavailable, notFound, principalOf, reply, sendError, unavailable,
  withClickHouse,
} from '../http/index.js';
import { ingestHandlers, type EventSink } from '../ingest/index.js';
import type { Logger } from '../observability/index.js';
import { ApiMetrics } from './api-metrics.js';
import { authenticate, requireAdmin, requireAuthenticated, requireIngest, requireReader } from './auth-middleware.js';
import type { Readiness } from './health.js';
import { queryBreakdown } from './breakdown-queries.js';
import { parseAdvertiserFilter, parseBreakdownQuery, parseCountsQuery } from './query-params.js';
import { queryAdvertisers, queryCampaigns, queryCounts } from './read-queries.js';

export interface ApiDeps {
  config: TallyConfig;
  log: Logger;
  verifier: TokenVerifier;
  /** Failed tokens per client address, shared with the live feed's handshakes; default: one of its own. */
  authFailures?: AuthFailureLimiter;
  clickhouse: ClickHouseClient;
  /** Where accepted ingest events go (the shared idempotent producer). */
  ingest: EventSink;
  metrics?: ApiMetrics;
  /** The live feed's pipeline status (GET /api/v1/pipeline); absent → 503. */
  pipelineStatus?: () => Promise<PipelineStatus>;
  readiness: () => Promise<Readiness>;
  /** Whether the live feed is attached and has read impression-counts to its end (reported by /readyz, not gating it). */
  liveFeedReady?: () => boolean;
  /** More registries served by /metrics (the live feed's tally_live_* metrics). */
  extraRegistries?: () => Registry[];
  /** The dashboard: static files with SPA fallback. Mounted after every API route. */
  webAssets?: RequestHandler;
  now?: () => number;
}

export interface ApiApp {
  app: express.Express;
  metrics: ApiMetrics;
}

/** Routes as labelled in metrics: the path patterns, never raw URLs (bounded label values). */
const KNOWN_ROUTES = new Set([
  '/healthz', '/readyz', '/metrics',
  '/api/v1/impressions', '/api/v1/me', '/api/v1/counts', '/api/v1/campaigns', '/api/v1/advertisers', '/api/v1/pipeline',
  '/api/v1/billing/export',
]);

export function routeLabel(originalUrl: string): string {
  let path = originalUrl.split('?')[0].toLowerCase();
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  if (KNOWN_ROUTES.has(path)) return path;
  return path === '/api' || path.startsWith('/api/') ? 'api_unmatched' : 'web';
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export function createApiApp(deps: ApiDeps): ApiApp {
  const { config, log, clickhouse: ch } = deps;
  const metrics = deps.metrics ?? new ApiMetrics();
  const now = deps.now ?? Date.now;
  const database = config.clickhouse.database;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.set('etag', false);

  // Metrics for every request, whatever answers it.
  app.use((req, res, next) => {
    const t0 = process.hrtime.bigint();
    res.once('finish', () => {
      const labels = { method: req.method, route: routeLabel(req.originalUrl), status: String(res.statusCode) };
      metrics.requests.inc(labels);
      metrics.duration.observe(labels, Number(process.hrtime.bigint() - t0) / 1e9);
    });
    next();
  });
  // helmet's defaults, minus upgrade-insecure-requests: the dashboard is often reached over plain
  // http (http://host:8080), where that directive would make the browser fetch its assets over https.
  app.use(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));

  // ---- operations endpoints (no token) ----
  app.get('/healthz', (_req, res) => reply(res, 200, { status: 'ok', uptimeMs: Math.round(process.uptime() * 1000) }));
  app.get('/readyz', async (_req, res) => {
    const r = await deps.readiness();
    const liveFeed = deps.liveFeedReady?.() ?? false;
    reply(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not_ready', kafka: r.kafka, clickhouse: r.clickhouse, liveFeed },
      r.ready ? {} : { 'Retry-After': '5' });
  });

  const perToken = (kind: string, limit: number) => rateLimit({
    windowMs: 60_000,
    limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req) => `${kind}:${principalOf(req).tokenId}`,
    handler: (_req, res) => sendError(res, new ApiError(429, `rate limit: at most ${limit} ${kind} requests per minute per token`)),
  });
  const apiLimiter = perToken('api', config.http.apiRateLimitPerMin);
  const ingestLimiter = perToken('ingest', config.http.ingestRateLimitPerMin);
  const authFailures = deps.authFailures ?? new AuthFailureLimiter(config.http.authFailureLimitPerMin, now);
  const authChain: RequestHandler[] = [authenticate(deps.verifier, authFailures), requireAuthenticated(metrics)];

  const serveMetrics: RequestHandler = async (_req, res) => {
    const texts = await Promise.all([metrics.registry, ...(deps.extraRegistries?.() ?? [])].map((r) => r.metrics()));
    const text = texts.map((t) => (t.endsWith('\n') ? t : `${t}\n`)).join('');
    if (res.headersSent) return;
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.status(200).send(text);
  };
  app.get('/metrics', (req, _res, next) => next(
    config.http.metricsAuth === 'loopback' && isLoopback(req.socket.remoteAddress) ? undefined : 'route'), serveMetrics);
  app.get('/metrics', ...authChain, requireAdmin, serveMetrics);

  // ---- /api ----
  app.use('/api', requestTimeout(config.http.requestTimeoutMs), cors(config.http.corsOrigins), (_req, res, next) => {
    // Per-token answers: never stored by a browser or a shared cache (billing sets its own headers).
    res.setHeader('Cache-Control', 'no-store');
    next();
  });

  const v1 = express.Router();
  v1.use(...authChain);

  v1.post('/impressions', ingestLimiter, requireIngest, ...ingestHandlers({ config, log, sink: deps.ingest, metrics, now }));

  v1.get('/me', apiLimiter, (req, res) => {
    const p = principalOf(req);
    const me: MeResponse = { name: p.name, admin: isAdmin(p), ingest: canIngest(p), advertisers: readableAdvertisers(p) };
    reply(res, 200, me);
  });

  v1.get('/counts', apiLimiter, requireReader, async (req, res) => {
    const p = principalOf(req);
    const q = parseCountsQuery(req.query, now());
    if (q.advertiserId === null && !isAdmin(p)) throw badRequest('advertiser_id is required (only an admin token may ask for every advertiser)', 'advertiser_id');
    if (q.advertiserId !== null && !canReadAdvertiser(p, q.advertiserId)) throw forbidden('this token may not read that advertiser');
    reply(res, 200, await withClickHouse(() => queryCounts(ch, database, q, config)));
  });

  v1.get('/breakdown', apiLimiter, requireReader, async (req, res) => {
    const p = principalOf(req);
    const q = parseBreakdownQuery(req.query, now(), config.dimensions);
    if (q.advertiserId === null && !isAdmin(p)) throw badRequest('advertiser_id is required (only an admin token may ask for every advertiser)', 'advertiser_id');
    if (q.advertiserId !== null && !canReadAdvertiser(p, q.advertiserId)) throw forbidden('this token may not read that advertiser');
    reply(res, 200, await withClickHouse(() => queryBreakdown(ch, database, q, config)));
  });

  v1.get('/dimensions', apiLimiter, requireReader, (_req, res) => {
    const body: DimensionsResponse = {
      dimensions: config.dimensions, valueLimit: config.dimensionValueLimit, unknownValue: UNKNOWN_VALUE, otherValue: OTHER_VALUE,
    };
    reply(res, 200, body);
  });

  v1.get('/campaigns', apiLimiter, requireReader, async (req, res) => {
    const p = principalOf(req);
    const advertiserId = parseAdvertiserFilter(req.query);
    if (advertiserId !== null && !canReadAdvertiser(p, advertiserId)) throw forbidden('this token may not read that advertiser');
    const filter = advertiserId !== null ? [advertiserId] : readableAdvertisers(p);
    reply(res, 200, await withClickHouse(() => queryCampaigns(ch, database, filter)));
  });

  v1.get('/advertisers', apiLimiter, requireReader, async (req, res) => {
    reply(res, 200, await withClickHouse(() => queryAdvertisers(ch, database, readableAdvertisers(principalOf(req)))));
  });

  v1.get('/pipeline', apiLimiter, requireAdmin, async (_req, res) => {
    if (deps.pipelineStatus === undefined) throw unavailable('the live feed is not running in this process');
    let status: PipelineStatus;
    try {
      status = await deps.pipelineStatus();
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'api.pipeline_status_failed');
      throw unavailable('pipeline status is unavailable right now; retry later');
    }
    reply(res, 200, status);
  });

  // GET /api/v1/billing/export and /periods (server/src/billing): streamed CSV/JSON statements
  // (the route checks the advertiser itself) and the periods' finality.
  v1.use('/billing', apiLimiter, requireReader, billingRouter({ config, clickhouse: ch, log, now, prefix: '' }));

  v1.use((req, _res, next) => next(notFound(`no route ${req.method} ${req.baseUrl}${req.path}`)));
  app.use('/api/v1', v1);
  app.use('/api', (req, _res, next) => next(notFound(`no route ${req.method} ${req.originalUrl.split('?')[0]}; the API lives under /api/v1`)));

  // ---- the dashboard, last ----
  if (deps.webAssets !== undefined) app.use(deps.webAssets);
  app.use((_req, _res, next) => next(notFound()));
  app.use(errorHandler(log));

  return { app, metrics };
}

/** A request still unanswered after `ms` gets a 503 (the handler's late answer is dropped). */
function requestTimeout(ms: number): RequestHandler {
  return (_req, res, next) => {
    const timer = setTimeout(() => sendError(res, unavailable(`the request took longer than ${ms} ms; retry later`)), ms);
    res.once('close', () => clearTimeout(timer));
    next();
  };
}

/** CORS for the listed origins only (exact match); no list → no CORS headers at all. */
function cors(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  return (req: Request, res: Response, next: NextFunction) => {
    if (allowed.size === 0) return next();
    res.append('Vary', 'Origin');
    const origin = req.headers.origin;
    if (origin === undefined || !allowed.has(origin)) return next();
    res.setHeader('Access-Control-Allow-Origin', origin);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST');
      res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, Content-Encoding');
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    res.setHeader('Access-Control-Expose-Headers', 'Retry-After, RateLimit, RateLimit-Policy');
    next();
  };
}

interface HttpErrorLike {
  status?: unknown;
  statusCode?: unknown;
  type?: unknown;
  expose?: unknown;
}

/**
 * Every error as JSON in the api-types shape: ApiErrors as they are; body-parser's errors (too
 * large, aborted, bad encoding…) as their 4xx; a ClickHouse outage as 503; anything else is a
 * real fault: logged, 500.
 */
function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let apiErr: ApiError;
    if (err instanceof ApiError) {
      apiErr = err;
    } else if (isClientHttpError(err)) {
      apiErr = clientError(err);
    } else if (isClickHouseUnavailable(err)) {
      apiErr = unavailable('ClickHouse is unavailable; retry later');
    } else {
      log.error({ err, method: req.method, route: routeLabel(req.originalUrl) }, 'api.internal_error');
      apiErr = new ApiError(500, 'internal server error');
    }
    if (res.headersSent) {
      // Timed out (503 already sent) or failed mid-stream: nothing more to say to this client.
      log.debug({ status: apiErr.status, message: apiErr.message }, 'api.error_after_response');
      if (!res.writableEnded) res.end();
      return;
    }
    if (apiErr.status >= 500) log.warn({ status: apiErr.status, message: apiErr.message, route: routeLabel(req.originalUrl) }, 'api.unavailable');
    reply(res, apiErr.status, errorBody(apiErr.status, apiErr.message, apiErr.parameter), apiErr.headers);
  };
}

function httpStatus(err: HttpErrorLike): number | undefined {
  const s = err.status ?? err.statusCode;
  return typeof s === 'number' ? s : undefined;
}

function isClientHttpError(err: unknown): err is HttpErrorLike {
  if (typeof err !== 'object' || err === null) return false;
  const s = httpStatus(err as HttpErrorLike);
  return s !== undefined && s >= 400 && s < 500;
}

function clientError(err: HttpErrorLike): ApiError {
  const status = httpStatus(err) ?? 400;
  switch (err.type) {
    case 'entity.too.large': return new ApiError(413, 'request body too large (at most 5 MB)');
    case 'entity.parse.failed': return badRequest('request body is not valid');
    case 'encoding.unsupported': return new ApiError(415, 'unsupported content encoding (identity, gzip, deflate or br)');
    case 'charset.unsupported': return new ApiError(415, 'unsupported charset (UTF-8 only)');
    case 'request.aborted': return badRequest('request aborted by the client');
    case 'request.size.invalid': return badRequest('request body size does not match content-length');
    default: return new ApiError(status, status === 400 ? 'bad request' : `request refused (${status})`);
  }
}
