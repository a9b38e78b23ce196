/**
 * Decoding of `impression-counts` values for the live feed, pure: window rows and watermark
 * records checked field by field (a record tally did not write is skipped, never trusted), and
 * tombstones recognised as such so the caller can ignore them: a tombstone only tells that the
 * aggregator evicted the window from its state (≈ 1 h after close); the counts stay valid and
 * ClickHouse keeps the row.
 */
import { decodeCountRecord, type CountRecord } from '../aggregator/count-record.js';
import type { LiveRowInput } from './live-state.js';

export type LiveRecord =
  | { kind: 'window'; row: LiveRowInput }
  | { kind: 'watermark'; partition: number; watermark: number; emittedAt: number }
  | { kind: 'tombstone' }
  | { kind: 'poison'; reason: string };

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

export function decodeLiveRecord(value: Buffer | null | undefined): LiveRecord {
  let rec: CountRecord | null;
  try {
    rec = decodeCountRecord(value);
  } catch (err) {
    return { kind: 'poison', reason: err instanceof SyntaxError ? 'not_json' : 'unknown_type' };
  }
  if (rec === null) return { kind: 'tombstone' };
  if (typeof rec !== 'object' || Array.isArray(rec)) return { kind: 'poison', reason: 'unknown_type' };
  if (rec.type === 'watermark') {
    if (!isUint(rec.source_partition)) return { kind: 'poison', reason: 'bad_source_partition' };
    if (!isInt(rec.watermark)) return { kind: 'poison', reason: 'bad_watermark' };
    if (!isUint(rec.emitted_at)) return { kind: 'poison', reason: 'bad_emitted_at' };
    return { kind: 'watermark', partition: rec.source_partition, watermark: rec.watermark, emittedAt: rec.emitted_at };
  }
  if (!isUint(rec.window_start)) return { kind: 'poison', reason: 'bad_window_start' };
  if (!isUint(rec.window_end) || rec.window_end <= rec.window_start) return { kind: 'poison', reason: 'bad_window_end' };
  if (!isId(rec.advertiser_id)) return { kind: 'poison', reason: 'bad_advertiser_id' };
  if (!isId(rec.campaign_id)) return { kind: 'poison', reason: 'bad_campaign_id' };
  if (!isUint(rec.source_partition)) return { kind: 'poison', reason: 'bad_source_partition' };
  if (!isUint(rec.impressions)) return { kind: 'poison', reason: 'bad_impressions' };
  if (!isUint(rec.spend_micros)) return { kind: 'poison', reason: 'bad_spend_micros' };
  if (!isUint(rec.duplicates)) return { kind: 'poison', reason: 'bad_duplicates' };
  if (!isUint(rec.version)) return { kind: 'poison', reason: 'bad_version' };
  return {
    kind: 'window',
    row: {
      windowStart: rec.window_start,
      windowEnd: rec.window_end,
      advertiserId: rec.advertiser_id,
      campaignId: rec.campaign_id,
      sourcePartition: rec.source_partition,
      impressions: rec.impressions,
      spendMicros: rec.spend_micros,
      duplicates: rec.duplicates,
      version: rec.version,
    },
  };
}
