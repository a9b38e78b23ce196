import { isUtf8 } from 'node:buffer';
import { scanImpression } from './scan-impression.js';
import { dimensionValueOf } from '../contracts/dimensions.js';
import { NO_DIMENSION_VALUES, NO_DIMENSIONS, type DimensionFields } from './dimension-fields.js';
import type { DeadLetterReason } from '../contracts/dead-letter-reasons.js';
import type { Impression, ParseResult } from './types.js';
import { ID_PATTERN } from '../contracts/ids.js';
import { parseZonedIsoTime } from '../contracts/zoned-time.js';

/** Largest accepted Kafka value; checked before decoding so a huge record costs nothing to refuse. */
export const MAX_EVENT_BYTES = 16384;

/**
 * Largest price of one impression: 1 000 000 currency units. Far above any real CPM, and low enough
 * that a window row's spend (a JS number) stays exact up to 9 million impressions at this price.
 */
export const MAX_COST_MICROS = 1_000_000_000_000;

/** Upper bound of a JS Date (±8.64e15 ms); anything beyond is not a time. */
const MAX_EPOCH_MS = 8.64e15;

type Fields = Record<string, unknown>;

function fail(reason: DeadLetterReason, detail: string): ParseResult {
  return { ok: false, reason, detail };
}

/** typeof, but telling null and arrays apart: detail messages name what was actually sent. */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Validates one Kafka value against the public impression contract (README) and returns the
 * impression or the dead-letter reason. Pure and cheap: the common shape is read in one pass over
 * the bytes (scanImpression); anything else gets one UTF-8 check, one JSON.parse and a few
 * precompiled regex tests, which also produce every dead-letter reason. `dimensions`: which
 * breakdown fields to read (their values never refuse an event: an unusable one is `unknown`).
 */
export function parseImpression(value: Buffer | null | undefined, dimensions: DimensionFields = NO_DIMENSIONS): ParseResult {
  if (value === null || value === undefined || value.length === 0) return fail('bad_json', 'empty value');
  if (value.length > MAX_EVENT_BYTES) return fail('too_large', `value is ${value.length} bytes, limit ${MAX_EVENT_BYTES}`);
  const common = scanImpression(value, dimensions);
  if (common !== null) return { ok: true, impression: common };
  return parseImpressionJson(value, dimensions);
}

/** The reference path: JSON.parse and field checks; decides every input scanImpression leaves open. */
export function parseImpressionJson(value: Buffer, dimensions: DimensionFields = NO_DIMENSIONS): ParseResult {
  // toString('utf8') would silently replace invalid bytes with U+FFFD; the contract says UTF-8.
  if (!isUtf8(value)) return fail('bad_json', 'value is not valid UTF-8');

  let doc: unknown;
  try {
    doc = JSON.parse(value.toString('utf8'));
  } catch {
    return fail('bad_json', 'value is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return fail('not_object', `value is JSON ${kindOf(doc)}, not an object`);
  }
  const fields = doc as Fields;

  const impressionId = fields.impression_id;
  const idError = checkId('impression_id', impressionId);
  if (idError) return idError;
  const advertiserId = fields.advertiser_id;
  const advError = checkId('advertiser_id', advertiserId);
  if (advError) return advError;
  const campaignId = fields.campaign_id;
  const cmpError = checkId('campaign_id', campaignId);
  if (cmpError) return cmpError;

  const rawTs = fields.ts;
  if (rawTs === undefined) return fail('missing_field', 'ts is missing');
  const ts = eventTimeMs(rawTs);
  if (ts === null) {
    return fail('bad_timestamp', 'ts must be epoch ms (integer > 0) or an ISO-8601 string with a zone (Z or ±hh:mm)');
  }

  const rawCost = fields.cost_micros;
  let costMicros = 0;
  if (rawCost !== undefined) {
    // null is refused rather than read as 0: an unknown price billed as free is money lost silently.
    if (typeof rawCost !== 'number' || !Number.isSafeInteger(rawCost) || rawCost < 0 || rawCost > MAX_COST_MICROS) {
      const got = typeof rawCost === 'number' ? String(rawCost) : kindOf(rawCost);
      return fail('bad_cost', `cost_micros must be an integer from 0 to ${MAX_COST_MICROS}, got ${got}`);
    }
    costMicros = rawCost + 0; // + 0 turns -0 into 0
  }

  const impression: Impression = {
    impressionId: impressionId as string,
    ts,
    advertiserId: advertiserId as string,
    campaignId: campaignId as string,
    costMicros,
    dimensionValues: dimensions.dimensions.length === 0 ? NO_DIMENSION_VALUES : dimensions.dimensions.map((d) => dimensionValueOf(fields[d])),
  };
  return { ok: true, impression };
}

function checkId(field: string, v: unknown): ParseResult | null {
  if (v === undefined) return fail('missing_field', `${field} is missing`);
  if (typeof v !== 'string') return fail('bad_type', `${field} must be a string, got ${kindOf(v)}`);
  if (!ID_PATTERN.test(v)) return fail('bad_id', `${field} must match ^[A-Za-z0-9._:-]{1,128}$`);
  return null;
}

/** Event time in epoch ms, or null when `v` is neither an accepted integer nor a zoned ISO string. */
function eventTimeMs(v: unknown): number | null {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 && v <= MAX_EPOCH_MS ? v : null;
  if (typeof v === 'string') {
    const t = parseZonedIsoTime(v);
    return t !== undefined && t > 0 && t <= MAX_EPOCH_MS ? t : null;
  }
  return null;
}
