/**
 * The wire format of the `impression-counts` topic: what the aggregator writes and the sink and
 * live feed read. Compacted by key; a null value (tombstone) marks an evicted window and is
 * ignored downstream (ClickHouse keeps the row).
 *
 *   key `${windowStart}|${advertiserId}|${campaignId}|${sourcePartition}` → WindowCountRecord
 *   key `watermark|${sourcePartition}`                                   → WatermarkRecord
 */
import type { WindowRow } from './core/types.js';

export interface WindowCountRecord {
  type: 'window';
  window_start: number;
  window_end: number;
  advertiser_id: string;
  campaign_id: string;
  source_partition: number;
  impressions: number;
  spend_micros: number;
  duplicates: number;
  version: number;
  final: boolean;
  revised: boolean;
}

export interface WatermarkRecord {
  type: 'watermark';
  source_partition: number;
  /** Event-time watermark in ms; windows ending at or before watermark − allowed lateness are final. */
  watermark: number;
  max_event_time: number;
  /** Wall clock of the transaction that wrote it. */
  emitted_at: number;
}

export type CountRecord = WindowCountRecord | WatermarkRecord;

export function watermarkKey(partition: number): string {
  return `watermark|${partition}`;
}

export function encodeWindowRow(row: WindowRow): Buffer {
  const rec: WindowCountRecord = {
    type: 'window',
    window_start: row.windowStart,
    window_end: row.windowEnd,
    advertiser_id: row.advertiserId,
    campaign_id: row.campaignId,
    source_partition: row.sourcePartition,
    impressions: row.impressions,
    spend_micros: row.spendMicros,
    duplicates: row.duplicates,
    version: row.version,
    final: row.final,
    revised: row.revised,
  };
  return Buffer.from(JSON.stringify(rec));
}

export function decodeWindowRow(rec: WindowCountRecord): WindowRow {
  return {
    windowStart: rec.window_start,
    windowEnd: rec.window_end,
    advertiserId: rec.advertiser_id,
    campaignId: rec.campaign_id,
    sourcePartition: rec.source_partition,
    impressions: rec.impressions,
    spendMicros: rec.spend_micros,
    duplicates: rec.duplicates,
    version: rec.version,
    final: rec.final,
    revised: rec.revised,
  };
}

export function encodeWatermark(rec: Omit<WatermarkRecord, 'type'>): Buffer {
  return Buffer.from(JSON.stringify({ type: 'watermark', ...rec } satisfies WatermarkRecord));
}

/** Parses a value of the counts topic; null for a tombstone. Throws on a record tally did not write. */
export function decodeCountRecord(value: Buffer | null | undefined): CountRecord | null {
  if (!value || value.length === 0) return null;
  const rec = JSON.parse(value.toString('utf8')) as CountRecord;
  if (rec.type !== 'window' && rec.type !== 'watermark') throw new Error(`unknown count record type ${String((rec as { type?: unknown }).type)}`);
  return rec;
}
