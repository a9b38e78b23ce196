/**
 * The ClickHouse rows of one period-close record, pure: its ledger rows, its late-unbillable
 * counts and its close row with the lineage (DateTime as epoch seconds, as JSONEachRow takes them).
 * The close row goes in last: its presence says the close's ledger rows are in.
 */
import type { CloseRow, PeriodCloseRecord } from '../contracts/period-close-record.js';

/** A row of `billing_ledger`: a close's row, with its period, partition and close time. */
export interface LedgerRow extends CloseRow {
  period_start: number;
  source_partition: number;
  closed_at: number;
}

export interface LateRow {
  arrival_period: number;
  advertiser_id: string;
  original_period: number;
  source_partition: number;
  events: number;
}

export interface PeriodCloseRow {
  period_start: number;
  source_partition: number;
  closed_at: number;
  watermark_ms: number;
  ledger_rows: number;
  source_topic: string;
  source_first_offset: number;
  source_close_offset: number;
  repartition_topic: string;
  repartition_first_offset: number;
  repartition_close_offset: number;
}

export const LEDGER_COLUMNS: [keyof LedgerRow, ...Array<keyof LedgerRow>] = [
  'period_start', 'advertiser_id', 'campaign_id', 'source_partition', 'impressions', 'spend_micros', 'duplicates', 'closed_at',
];
export const LATE_COLUMNS: [keyof LateRow, ...Array<keyof LateRow>] = ['arrival_period', 'advertiser_id', 'original_period', 'source_partition', 'events'];
export const PERIOD_CLOSE_COLUMNS: [keyof PeriodCloseRow, ...Array<keyof PeriodCloseRow>] = [
  'period_start', 'source_partition', 'closed_at', 'watermark_ms', 'ledger_rows',
  'source_topic', 'source_first_offset', 'source_close_offset', 'repartition_topic', 'repartition_first_offset', 'repartition_close_offset',
];

const seconds = (ms: number) => Math.floor(ms / 1000);

export function ledgerRowsOf(rec: PeriodCloseRecord): { ledger: LedgerRow[]; late: LateRow[]; close: PeriodCloseRow } {
  const period = seconds(rec.period_start);
  const closedAt = seconds(rec.closed_at);
  const p = rec.source_partition;
  const { source, repartition } = rec.lineage;
  return {
    ledger: rec.rows.map((r) => ({
      period_start: period, advertiser_id: r.advertiser_id, campaign_id: r.campaign_id, source_partition: p,
      impressions: r.impressions, spend_micros: r.spend_micros, duplicates: r.duplicates, closed_at: closedAt,
    })),
    late: rec.late_unbillable.map((l) => ({
      arrival_period: period, advertiser_id: l.advertiser_id, original_period: seconds(l.original_period_start), source_partition: p, events: l.events,
    })),
    close: {
      period_start: period, source_partition: p, closed_at: closedAt, watermark_ms: rec.watermark, ledger_rows: rec.rows.length,
      source_topic: source.topic, source_first_offset: source.first_offset ?? -1, source_close_offset: source.close_offset,
      repartition_topic: repartition.topic, repartition_first_offset: repartition.first_offset ?? -1, repartition_close_offset: repartition.close_offset,
    },
  };
}
