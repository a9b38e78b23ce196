/**
 * GET /api/v1/billing/export — the billing export over HTTP, streamed — and
 * GET /api/v1/billing/periods — which hours are final, since when, and when the others will be.
 *
 * Mount inside the authenticated /api/v1 router (after authenticate + requireAuthenticated), e.g.
 * `v1.use(apiLimiter, billingRouter({ config, log, clickhouse: ch, now }))`: the export reads the
 * principal with principalOf(req) and answers 403 unless it may read the advertiser (periods are
 * the same for every advertiser); bad parameters are 400 naming the parameter (ApiError, rendered
 * by the API's error handler). A breakdown may name only the dimensions counted here
 * (config.dimensions, TALLY_DIMENSIONS).
 *
 * Response headers: Content-Type, Content-Disposition (attachment), X-Tally-Export-Status
 * (final | provisional), and X-Tally-Export-SHA256 as an HTTP trailer (the digest is known only
 * after the last row; `Trailer:` announces it). The same digest ends the file itself. If ClickHouse
 * fails mid-stream the connection is cut, so a client never sees a truncated file as complete.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import express, { type Request, type Response } from 'express';
import { canReadAdvertiser, type Principal } from '../auth/principal.js';
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { BillingPeriodsResponse } from '../contracts/api-types.js';
import { EXPORT_SHA256_HEADER, EXPORT_STATUS_HEADER } from '../contracts/billing-export.js';
import { badRequest, forbidden, isClickHouseUnavailable, principalOf as httpPrincipalOf, unavailable } from '../http/index.js';
import { periodTimeline, queryFrontier, queryPeriodCloses } from '../ledger/index.js';
import { contentType } from './export-format.js';
import { BillingParamError, isoUtc, parseExportParams, parsePeriodsParams, type ExportQuery, type PeriodsQuery } from './export-params.js';
import { runExport } from './export-query.js';

export interface BillingRouterDeps {
  config: TallyConfig;
  clickhouse: ClickHouseClient;
  log: Logger;
  now?: () => number;
  /** Where the route finds the caller (default: http/'s principalOf, bound by the API's auth middleware). */
  principalOf?: (req: Request) => Principal;
  /** Routes' prefix inside the mount point (default /billing, for mounting under /api/v1). */
  prefix?: string;
}

export function exportFileName(q: ExportQuery): string {
  const stamp = (ms: number) => isoUtc(ms).replace(/:/g, '');
  const by = q.breakdown === undefined ? '' : `-by-${q.breakdown.join('-')}`;
  return `tally-billing-${q.advertiserId}-${stamp(q.from)}-${stamp(q.to)}-${q.granularity}${by}.${q.format}`;
}

/** Resolves on 'drain', rejects if the client went away first. */
function writeTo(res: Response): (chunk: string) => Promise<void> {
  return (chunk) => new Promise<void>((resolve, reject) => {
    if (res.destroyed || res.writableEnded) return reject(new Error('client closed the connection'));
    if (res.write(chunk)) return resolve();
    const onDrain = () => { cleanup(); resolve(); };
    const onClose = () => { cleanup(); reject(new Error('client closed the connection')); };
    const cleanup = () => { res.off('drain', onDrain); res.off('close', onClose); };
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

export function billingRouter(deps: BillingRouterDeps): express.Router {
  const { config, clickhouse: ch, log } = deps;
  const principalOf = deps.principalOf ?? httpPrincipalOf;
  const now = deps.now ?? Date.now;
  const prefix = deps.prefix ?? '/billing';
  const router = express.Router();

  router.get(`${prefix}/periods`, async (req: Request, res: Response) => {
    const q = params(() => parsePeriodsParams(req.query, now()));
    res.status(200).json(await periods(q));
  });

  async function periods(q: PeriodsQuery): Promise<BillingPeriodsResponse> {
    const db = config.clickhouse.database;
    try {
      const [frontier, closes] = await Promise.all([queryFrontier(ch, db, config.partitions), queryPeriodCloses(ch, db, q.from, q.to)]);
      const closeAfterMs = config.allowedLatenessMs + config.dedupHorizonMs;
      const t = now();
      return {
        from: q.from, to: q.to, partitions: config.partitions, closeAfterMs, finalBefore: frontier.finalBefore, minWatermark: frontier.minWatermark,
        periods: periodTimeline({ ...q, partitions: config.partitions, closes, frontier, allowedLatenessMs: config.allowedLatenessMs, closeAfterMs, now: t }),
        serverTime: t,
      };
    } catch (err) {
      if (isClickHouseUnavailable(err)) throw unavailable('ClickHouse is unavailable; retry later');
      throw err;
    }
  }

  router.get(`${prefix}/export`, async (req: Request, res: Response) => {
    const q = params(() => parseExportParams(req.query, config.dimensions));
    if (!canReadAdvertiser(principalOf(req), q.advertiserId)) throw forbidden('this token may not read that advertiser');
    const t0 = Date.now();
    try {
      const result = await runExport(ch, config, q, writeTo(res), {
        now,
        onStart: (meta) => {
          res.status(200);
          res.setHeader('Content-Type', contentType(q.format));
          res.setHeader('Content-Disposition', `attachment; filename="${exportFileName(q)}"`);
          res.setHeader('Cache-Control', 'no-store');
          res.setHeader(EXPORT_STATUS_HEADER, meta.status);
          res.setHeader('Trailer', EXPORT_SHA256_HEADER);
        },
      });
      res.addTrailers({ [EXPORT_SHA256_HEADER]: result.sha256 });
      res.end();
      log.info({ advertiserId: q.advertiserId, from: q.from, to: q.to, granularity: q.granularity, format: q.format, breakdown: q.breakdown,
        status: result.status, rows: result.rows, breakdownRows: result.breakdownRows, ms: Date.now() - t0 }, 'billing.export');
    } catch (err) {
      if (res.headersSent) {
        // Mid-stream: cut the connection (no final chunk), so the client sees an incomplete response.
        log.warn({ err: err instanceof Error ? err.message : String(err), advertiserId: q.advertiserId }, 'billing.export_aborted');
        res.destroy();
        return;
      }
      if (isClickHouseUnavailable(err)) throw unavailable('ClickHouse is unavailable; retry later');
      throw err;
    }
  });
  return router;
}

/** Parsed parameters, or the 400 naming the bad one. */
function params<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof BillingParamError) throw badRequest(err.message, err.parameter);
    throw err;
  }
}
