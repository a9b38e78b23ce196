/**
 * A billing period closed in one partition, as the aggregator commits it to `impression-counts`
 * (key `close|${periodStart}|${sourcePartition}`, never deleted) and the sink copies into the
 * ledger (the live feed reads it too: it turns its hour's rows final; count-record.ts checks it). Written once, in the same transaction as the state that makes it true: every window of
 * the period passed the dedup horizon in that partition, so nothing can change it any more.
 *
 * Lineage: for each of the partition's two inputs, the first offset that contributed to the period
 * (null: none) and the offset the closing transaction committed. Every record counted in the period
 * by this partition lies in [first_offset, close_offset) of one of them.
 */
import { ID_PATTERN as ID } from './ids.js';
import { microsJson } from './micros.js';

export interface PeriodCloseRecord {
  type: 'period_close';
  /** UTC hour, epoch ms. */
  period_start: number;
  period_end: number;
  source_partition: number;
  /** Wall clock of the closing transaction. */
  closed_at: number;
  /** The partition's watermark at the close. */
  watermark: number;
  rows: CloseRow[];
  /** Events refused as too_late while this partition's watermark was in this period, by their own period. */
  late_unbillable: Array<{ advertiser_id: string; original_period_start: number; events: number }>;
  lineage: { source: InputRange; repartition: InputRange };
}

/** One campaign's numbers in a closed period (spend: a number, or digits above 2^53). */
export interface CloseRow {
  advertiser_id: string;
  campaign_id: string;
  impressions: number;
  spend_micros: number | string;
  duplicates: number;
}

export interface InputRange {
  topic: string;
  partition: number;
  first_offset: number | null;
  close_offset: number;
}

export function periodCloseKey(periodStart: number, partition: number): string {
  return `close|${periodStart}|${partition}`;
}

export function encodePeriodClose(rec: Omit<PeriodCloseRecord, 'type'>): Buffer {
  return Buffer.from(JSON.stringify({ type: 'period_close', ...rec } satisfies PeriodCloseRecord));
}

/** The spend of a row as written (a number, or digits above 2^53). */
export function closeRowSpend(micros: bigint): number | string {
  return microsJson(micros);
}

const HOUR_MS = 3_600_000;
const DIGITS = /^(0|[1-9]\d{0,19})$/;

function uint(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function offset(v: unknown): boolean {
  return v === null || uint(v);
}

/** The first field that is not what the aggregator writes, or null when the record is sound. */
export function periodCloseProblem(rec: Partial<PeriodCloseRecord>): string | null {
  if (!uint(rec.period_start) || (rec.period_start as number) % HOUR_MS !== 0) return 'bad_period_start';
  if (rec.period_end !== (rec.period_start as number) + HOUR_MS) return 'bad_period_end';
  if (!uint(rec.source_partition) || (rec.source_partition as number) > 65_535) return 'bad_source_partition';
  if (!uint(rec.closed_at)) return 'bad_closed_at';
  if (typeof rec.watermark !== 'number' || !Number.isSafeInteger(rec.watermark)) return 'bad_watermark';
  if (!Array.isArray(rec.rows)) return 'bad_rows';
  for (const r of rec.rows) {
    if (typeof r !== 'object' || r === null || !ID.test(String(r.advertiser_id)) || !ID.test(String(r.campaign_id))
      || typeof r.advertiser_id !== 'string' || typeof r.campaign_id !== 'string' || !uint(r.impressions) || !uint(r.duplicates)
      || !(uint(r.spend_micros) || (typeof r.spend_micros === 'string' && DIGITS.test(r.spend_micros)))) return 'bad_rows';
  }
  if (!Array.isArray(rec.late_unbillable)) return 'bad_late_unbillable';
  for (const l of rec.late_unbillable) {
    if (typeof l !== 'object' || l === null || typeof l.advertiser_id !== 'string' || !ID.test(l.advertiser_id)
      || !uint(l.original_period_start) || l.original_period_start % HOUR_MS !== 0 || !uint(l.events)) return 'bad_late_unbillable';
  }
  const lin = rec.lineage;
  for (const r of [lin?.source, lin?.repartition]) {
    if (typeof r !== 'object' || r === null || typeof r.topic !== 'string' || !uint(r.partition) || !offset(r.first_offset) || !uint(r.close_offset)) return 'bad_lineage';
  }
  return null;
}
