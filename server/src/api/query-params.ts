/**
 * Query parameters of the read routes, validated with zod. Unknown parameters are ignored; a bad
 * value is a 400 naming the parameter. Ids must match the contract's pattern exactly: no trimming,
 * no case folding, no padding rules (`ADV-1` and `adv-01` are simply other advertisers than `adv-1`).
 * Pure: no I/O, unit-tested.
 */
import { z } from 'zod';
import { ID_PATTERN } from '../contracts/ids.js';
import type { BreakdownGranularity, Granularity } from '../contracts/api-types.js';
import { DIMENSIONS, isDimension, type Dimension } from '../contracts/dimensions.js';
import { ApiError, badRequest, MAX_TIME_MS, parseTimeParam } from '../http/index.js';

export const DAY_MS = 86_400_000;
/** Longest counts range: three months and a bit, enough for any quarter. */
export const MAX_RANGE_DAYS = 93;
export const MAX_RANGE_MS = MAX_RANGE_DAYS * DAY_MS;
/** Default counts range: the last 24 h. */
export const DEFAULT_RANGE_MS = DAY_MS;
export const GRANULARITIES: readonly Granularity[] = ['window', 'hour', 'day'];
export const DEFAULT_GRANULARITY: Granularity = 'hour';

const ID_MESSAGE = 'must match ^[A-Za-z0-9._:-]{1,128}$ exactly';
const TIME_MESSAGE = 'must be epoch milliseconds or an ISO-8601 date-time with a zone (e.g. 2025-11-26T10:00:00Z), between 1970 and 2106';

/** A query value given once as text; repeated (`?a=1&a=2`) or nested (`?a[b]=1`) values are refused. */
const text = z.string({ error: 'must be given once, as a plain value' });
const idParam = text.regex(ID_PATTERN, ID_MESSAGE);
const timeParam = text.transform((v, ctx) => {
  const t = parseTimeParam(v);
  if (t === undefined) {
    ctx.addIssue({ code: 'custom', message: TIME_MESSAGE });
    return z.NEVER;
  }
  return t;
});
const granularityParam = z.enum(['window', 'hour', 'day'], { error: `must be one of ${GRANULARITIES.join(', ')}` });

const countsSchema = z.object({
  advertiser_id: idParam.optional(),
  campaign_id: idParam.optional(),
  from: timeParam.optional(),
  to: timeParam.optional(),
  granularity: granularityParam.optional(),
});

const breakdownSchema = countsSchema.extend({
  dimension: text.optional(),
  granularity: z.enum(['window', 'hour', 'day', 'total'], { error: 'must be one of window, hour, day, total' }).optional(),
});

const advertiserFilterSchema = z.object({ advertiser_id: idParam.optional() });

/** The first zod issue as a 400 naming its parameter. */
function firstIssue(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  const parameter = issue.path.length > 0 ? String(issue.path[0]) : undefined;
  return badRequest(parameter === undefined ? issue.message : `${parameter} ${issue.message}`, parameter);
}

/** Express's parsed query (plain object; values strings or arrays for repeats) or anything else. */
function asObject(query: unknown): Record<string, unknown> {
  return typeof query === 'object' && query !== null ? (query as Record<string, unknown>) : {};
}

export interface CountsQuery {
  /** null: every advertiser (admin only; the route enforces that). */
  advertiserId: string | null;
  campaignId: string | null;
  /** [from, to), epoch ms. */
  from: number;
  to: number;
  granularity: Granularity;
}

/** GET /api/v1/counts parameters; throws a 400 ApiError naming the parameter. */
export function parseCountsQuery(query: unknown, now: number): CountsQuery {
  const r = countsSchema.safeParse(asObject(query));
  if (!r.success) throw firstIssue(r.error);
  const q = r.data;
  let from: number;
  let to: number;
  if (q.from === undefined && q.to === undefined) {
    to = Math.min(now, MAX_TIME_MS);
    from = Math.max(0, to - DEFAULT_RANGE_MS);
  } else if (q.from === undefined) {
    to = q.to as number;
    from = Math.max(0, to - DEFAULT_RANGE_MS);
  } else if (q.to === undefined) {
    from = q.from;
    to = Math.min(from + DEFAULT_RANGE_MS, MAX_TIME_MS);
  } else {
    from = q.from;
    to = q.to;
  }
  if (from >= to) throw badRequest('from must be before to', q.from === undefined ? 'to' : 'from');
  if (to - from > MAX_RANGE_MS) throw badRequest(`the range from..to may span at most ${MAX_RANGE_DAYS} days`, 'to');
  return {
    advertiserId: q.advertiser_id ?? null,
    campaignId: q.campaign_id ?? null,
    from,
    to,
    granularity: q.granularity ?? DEFAULT_GRANULARITY,
  };
}

export interface BreakdownQuery extends Omit<CountsQuery, 'granularity'> {
  dimension: Dimension;
  granularity: BreakdownGranularity;
}

/**
 * GET /api/v1/breakdown parameters: /counts' (same defaults and limits), plus `dimension`, one of
 * the configured ones, and `granularity` also `total` (the default); throws a 400 naming the parameter.
 */
export function parseBreakdownQuery(query: unknown, now: number, configured: readonly Dimension[]): BreakdownQuery {
  const r = breakdownSchema.safeParse(asObject(query));
  if (!r.success) throw firstIssue(r.error);
  const { dimension, granularity } = r.data;
  if (dimension === undefined) throw badRequest(`dimension is required: one of ${configured.join(', ')}`, 'dimension');
  if (!isDimension(dimension)) throw badRequest(`dimension must be one of ${DIMENSIONS.join(', ')}`, 'dimension');
  if (!configured.includes(dimension)) {
    throw badRequest(`dimension ${dimension} is not counted here (TALLY_DIMENSIONS=${configured.join(',')})`, 'dimension');
  }
  const range = parseCountsQuery({ ...asObject(query), granularity: undefined }, now);
  return { ...range, dimension, granularity: granularity ?? 'total' };
}

/** `?advertiser_id=` of /campaigns (optional); throws a 400 ApiError. */
export function parseAdvertiserFilter(query: unknown): string | null {
  const r = advertiserFilterSchema.safeParse(asObject(query));
  if (!r.success) throw firstIssue(r.error);
  return r.data.advertiser_id ?? null;
}
