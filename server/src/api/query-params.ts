/**
 * Query parameters of the read routes, validated with zod. Unknown parameters are ignored; a bad
 * value is a 400 naming the parameter. Ids must match the contract's pattern exactly: no trimming,
 * no case folding, no padding rules (`ADV-1` and `adv-01` are simply other advertisers than `adv-1`).
 * Pure: no I/O, unit-tested.
 */
import { z } from 'zod';
import { ID_PATTERN } from '../contracts/ids.js';
import type { Granularity } from './api-types.js';
import { ApiError, badRequest } from './http-errors.js';

export const DAY_MS = 86_400_000;
/** Longest counts range: three months and a bit, enough for any quarter. */
export const MAX_RANGE_DAYS = 93;
export const MAX_RANGE_MS = MAX_RANGE_DAYS * DAY_MS;
/** Default counts range: the last 24 h. */
export const DEFAULT_RANGE_MS = DAY_MS;
/** ClickHouse DateTime holds whole seconds up to 2^32 − 1 (year 2106). */
export const MAX_TIME_MS = 4_294_967_295_000;
export const GRANULARITIES: readonly Granularity[] = ['window', 'hour', 'day'];
export const DEFAULT_GRANULARITY: Granularity = 'hour';

/** ISO-8601 date-time with a mandatory zone (Z or ±hh:mm); seconds and fraction optional. */
const ISO_WITH_ZONE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;
const EPOCH_MS = /^\d{1,13}$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * A time parameter: epoch milliseconds (digits only) or ISO-8601 with a zone. Impossible dates
 * (02-30, 24:00) and zoneless strings are refused rather than guessed. Undefined if invalid or
 * outside what ClickHouse's DateTime holds (1970 to 2106).
 */
export function parseTimeParam(value: string): number | undefined {
  let t: number;
  if (EPOCH_MS.test(value)) {
    t = Number(value);
  } else {
    const m = ISO_WITH_ZONE.exec(value);
    if (m === null) return undefined;
    const [year, month, day, hour, minute] = [1, 2, 3, 4, 5].map((i) => Number(m[i]));
    const second = m[6] === undefined ? 0 : Number(m[6]);
    const ms = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
    if (year < 1970 || month < 1 || month > 12 || day < 1) return undefined;
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    const monthDays = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1];
    if (day > monthDays || hour > 23 || minute > 59 || second > 59) return undefined;
    let offsetMin = 0;
    if (m[8] === undefined) {
      const oh = Number(m[10]);
      const om = Number(m[11]);
      if (oh > 23 || om > 59) return undefined;
      offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
    }
    t = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
  }
  return Number.isSafeInteger(t) && t >= 0 && t <= MAX_TIME_MS ? t : undefined;
}

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

/** `?advertiser_id=` of /campaigns (optional); throws a 400 ApiError. */
export function parseAdvertiserFilter(query: unknown): string | null {
  const r = advertiserFilterSchema.safeParse(asObject(query));
  if (!r.success) throw firstIssue(r.error);
  return r.data.advertiser_id ?? null;
}
