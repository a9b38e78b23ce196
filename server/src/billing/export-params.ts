/**
 * Parameters of a billing export (GET /api/v1/billing/export and `tally billing export`),
 * validated before anything reaches SQL. Pure: no I/O, unit-tested.
 *
 *   advertiser_id  required, the contract's ^[A-Za-z0-9._:-]{1,128}$ exactly
 *   from, to       required; YYYY-MM-DD (midnight UTC), ISO-8601 date-time with a zone, or epoch ms;
 *                  aligned to the granularity (whole UTC hours / days); from < to; at most 93 days
 *   granularity    day (default) | hour
 *   format         csv (default) | json
 *   breakdown      optional: a dimension, or several separated by commas (country,device), each one
 *                  counted here (TALLY_DIMENSIONS), none twice: each row is also broken down by
 *                  their values (the statement's breakdown section, export-format.ts)
 *
 * Billing periods (GET /api/v1/billing/periods): from, to optional, whole UTC hours, at most 93
 * days; default the 48 hours up to the end of the current hour.
 *
 * A bad value is a BillingParamError naming the parameter (the route answers 400 with it);
 * repeated or nested values (`?a=1&a=2`, `?a[b]=1`) are refused, unknown parameters ignored.
 */
import { InvalidArgumentError } from '../errors/index.js';
import type { BillingFormat, BillingGranularity } from '../contracts/billing-export.js';
import { isDimension, type Dimension } from '../contracts/dimensions.js';
import { ID_PATTERN } from '../contracts/ids.js';
import { MAX_TIME_MS, parseTimeParam } from '../http/index.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
export const MAX_EXPORT_DAYS = 93;
export const PERIOD_MS: Record<BillingGranularity, number> = { hour: HOUR_MS, day: DAY_MS };

export interface ExportQuery {
  advertiserId: string;
  /** [from, to), epoch ms, multiples of the period. */
  from: number;
  to: number;
  granularity: BillingGranularity;
  format: BillingFormat;
  /** The dimensions each row is broken down by, in the order asked; absent: no breakdown section. */
  breakdown?: Dimension[];
}

export class BillingParamError extends InvalidArgumentError {
  constructor(readonly parameter: string, message: string) {
    super(`${parameter} ${message}`);
  }
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const TIME_MESSAGE = 'must be a date (YYYY-MM-DD), an ISO-8601 date-time with a zone (e.g. 2025-11-26T10:00:00Z) or epoch milliseconds, between 1970 and 2106';

/** A from/to value as epoch ms, or undefined when it is none of the accepted forms. */
export function parseExportTime(value: string): number | undefined {
  if (DATE_ONLY.test(value)) return parseTimeParam(`${value}T00:00:00Z`);
  return parseTimeParam(value);
}

/** Epoch ms as ISO-8601 UTC without milliseconds when they are zero: 2025-11-26T10:00:00Z. */
export function isoUtc(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}

function single(query: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const v = query[name];
  if (v === undefined) {
    if (required) throw new BillingParamError(name, 'is required');
    return undefined;
  }
  if (typeof v !== 'string') throw new BillingParamError(name, 'must be given once, as a plain value');
  return v;
}

function time(query: Record<string, unknown>, name: 'from' | 'to', granularity: BillingGranularity): number {
  const t = optionalTime(query, name, granularity);
  if (t === undefined) throw new BillingParamError(name, 'is required');
  return t;
}

function optionalTime(query: Record<string, unknown>, name: 'from' | 'to', granularity: BillingGranularity): number | undefined {
  const raw = single(query, name, false);
  if (raw === undefined) return undefined;
  const t = parseExportTime(raw);
  if (t === undefined) throw new BillingParamError(name, TIME_MESSAGE);
  if (t % PERIOD_MS[granularity] !== 0) {
    throw new BillingParamError(name, `must be aligned to the granularity: a whole UTC ${granularity === 'hour' ? 'hour (hh:00:00)' : 'day (00:00:00Z)'}`);
  }
  return t;
}

/** `breakdown`: names of dimensions counted here, as asked; undefined when absent. */
function breakdownParam(query: Record<string, unknown>, counted: readonly Dimension[]): Dimension[] | undefined {
  const raw = single(query, 'breakdown', false);
  if (raw === undefined) return undefined;
  if (counted.length === 0) throw new BillingParamError('breakdown', 'is not available: no dimension is counted here (TALLY_DIMENSIONS is empty)');
  const choices = `choose from ${counted.join(', ')} (TALLY_DIMENSIONS)`;
  const dimensions: Dimension[] = [];
  for (const name of raw.split(',').map((n) => n.trim())) {
    if (!isDimension(name)) throw new BillingParamError('breakdown', `must be a dimension or several separated by commas; ${choices}`);
    if (!counted.includes(name)) throw new BillingParamError('breakdown', `names ${name}, which is not counted here; ${choices}`);
    if (dimensions.includes(name)) throw new BillingParamError('breakdown', `names ${name} twice`);
    dimensions.push(name);
  }
  return dimensions;
}

/**
 * Validates raw parameters (express's parsed query, or the CLI's flags under the same names).
 * `counted`: the dimensions configured here (TALLY_DIMENSIONS), the only ones a breakdown may name.
 */
export function parseExportParams(input: unknown, counted: readonly Dimension[] = []): ExportQuery {
  const query = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  const advertiserId = single(query, 'advertiser_id', true) as string;
  if (!ID_PATTERN.test(advertiserId)) throw new BillingParamError('advertiser_id', 'must match ^[A-Za-z0-9._:-]{1,128}$ exactly');
  const g = single(query, 'granularity', false) ?? 'day';
  if (g !== 'day' && g !== 'hour') throw new BillingParamError('granularity', 'must be one of day, hour');
  const f = single(query, 'format', false) ?? 'csv';
  if (f !== 'csv' && f !== 'json') throw new BillingParamError('format', 'must be one of csv, json');
  const from = time(query, 'from', g);
  const to = time(query, 'to', g);
  if (from >= to) throw new BillingParamError('from', 'must be before to');
  if (to - from > MAX_EXPORT_DAYS * DAY_MS) throw new BillingParamError('to', `the range from..to may span at most ${MAX_EXPORT_DAYS} days`);
  if (to > MAX_TIME_MS) throw new BillingParamError('to', TIME_MESSAGE);
  const breakdown = breakdownParam(query, counted);
  return { advertiserId, from, to, granularity: g, format: f, ...(breakdown === undefined ? {} : { breakdown }) };
}

export interface PeriodsQuery {
  /** [from, to), whole UTC hours. */
  from: number;
  to: number;
}

/** Hours shown when the range is not given: the last two days up to the end of the current hour. */
export const DEFAULT_PERIODS_MS = 48 * HOUR_MS;

export function parsePeriodsParams(input: unknown, now: number): PeriodsQuery {
  const query = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  const given = { from: optionalTime(query, 'from', 'hour'), to: optionalTime(query, 'to', 'hour') };
  const to = given.to ?? (given.from !== undefined ? given.from + DEFAULT_PERIODS_MS : Math.floor(now / HOUR_MS) * HOUR_MS + HOUR_MS);
  const from = given.from ?? to - DEFAULT_PERIODS_MS;
  if (from < 0) throw new BillingParamError('to', 'leaves no room for the default range before it; give from too');
  if (from >= to) throw new BillingParamError('from', 'must be before to');
  if (to - from > MAX_EXPORT_DAYS * DAY_MS) throw new BillingParamError('to', `the range from..to may span at most ${MAX_EXPORT_DAYS} days`);
  if (to > MAX_TIME_MS) throw new BillingParamError('to', TIME_MESSAGE);
  return { from, to };
}
