/**
 * One batch of the ClickHouse sink, pure (no I/O): decodes `impression-counts` records, keeps
 * the highest version per window key and the newest watermark per source partition, turns period
 * closes into ledger, late and close rows, ignores tombstones, and tracks per Kafka partition the
 * offset to commit once the batch is in ClickHouse (last offset seen + 1). Every record moves the
 * offset, including tombstones and poison records, so a committed batch never has to be read again.
 */
import {
  checkCountRecord, type BreakdownEntries, type WatermarkRecord, type WindowCountRecord,
} from '../contracts/count-record.js';
import type { Dimension } from '../contracts/dimensions.js';
import type { SinkBatch, TableInsert } from './batch-target.js';
import {
  LATE_COLUMNS, LEDGER_COLUMNS, ledgerRowsOf, PERIOD_CLOSE_COLUMNS, type LateRow, type LedgerRow, type PeriodCloseRow,
} from './ledger-rows.js';
import { PartitionOffsets, type PartitionOffset } from './partition-offsets.js';

/** A row of `impression_counts` as sent in JSONEachRow: the window record's fields, booleans as 0/1. */
export type ImpressionCountRow = Omit<WindowCountRecord, 'type' | 'final' | 'revised' | 'breakdowns'> & { final: 0 | 1; revised: 0 | 1 };

/** A row of `impression_breakdowns`: one value of one dimension of a window row, with the row's version. */
export interface ImpressionBreakdownRow {
  window_start: number;
  window_end: number;
  advertiser_id: string;
  campaign_id: string;
  source_partition: number;
  dimension: Dimension;
  value: string;
  impressions: number;
  spend_micros: number | string;
  version: number;
}

/** A kept window row and the breakdowns of the same version. */
interface KeptWindow {
  row: ImpressionCountRow;
  breakdowns: Partial<Record<Dimension, BreakdownEntries>> | undefined;
}

/** A row of `partition_watermarks` (version = the watermark, clamped at 0: it never decreases). */
export interface PartitionWatermarkRow {
  source_partition: number;
  watermark_ms: number;
  max_event_time_ms: number;
  updated_at: number;
  version: number;
}

export const IMPRESSION_COUNT_COLUMNS: [keyof ImpressionCountRow, ...Array<keyof ImpressionCountRow>] = [
  'window_start', 'window_end', 'advertiser_id', 'campaign_id', 'source_partition',
  'impressions', 'spend_micros', 'duplicates', 'version', 'final', 'revised',
];

export const IMPRESSION_BREAKDOWN_COLUMNS: [keyof ImpressionBreakdownRow, ...Array<keyof ImpressionBreakdownRow>] = [
  'window_start', 'window_end', 'advertiser_id', 'campaign_id', 'source_partition', 'dimension', 'value', 'impressions', 'spend_micros', 'version',
];

export const PARTITION_WATERMARK_COLUMNS: [keyof PartitionWatermarkRow, ...Array<keyof PartitionWatermarkRow>] = [
  'source_partition', 'watermark_ms', 'max_event_time_ms', 'updated_at', 'version',
];

/** The batch's rows for one table, in insert order (see RowBatch.inserts). */
export interface CountsTableInsert extends TableInsert {
  table: 'impression_counts' | 'impression_breakdowns' | 'billing_ledger' | 'billing_late' | 'period_closes' | 'partition_watermarks';
}

export type AddOutcome =
  | { kind: 'window' }
  | { kind: 'watermark' }
  | { kind: 'period_close' }
  | { kind: 'tombstone' }
  /** Not a record tally wrote (not JSON, unknown type, fields out of range): skipped, offset still moves. */
  | { kind: 'poison'; reason: string };

export class RowBatch implements SinkBatch {
  private readonly windows = new Map<string, KeptWindow>();
  private readonly watermarks = new Map<number, PartitionWatermarkRow>();
  private readonly ledger: LedgerRow[] = [];
  private readonly late: LateRow[] = [];
  private readonly closes: PeriodCloseRow[] = [];
  private readonly nextOffsets = new PartitionOffsets();
  private recordCount = 0;
  private openedAt: number | undefined;

  /**
   * Adds the record read at `partition`/`offset` of the counts topic. `now` (epoch ms) stamps
   * when the batch received its first record, for the time bound.
   */
  add(partition: number, offset: number, value: Buffer | null | undefined, now = Date.now()): AddOutcome {
    this.recordCount++;
    this.openedAt ??= now;
    this.nextOffsets.advance(partition, offset + 1);

    const checked = checkCountRecord(value);
    if (checked.kind === 'tombstone' || checked.kind === 'poison') return checked;
    if (checked.kind === 'period_close') {
      const rows = ledgerRowsOf(checked.record);
      for (const r of rows.ledger) this.ledger.push(r);
      for (const r of rows.late) this.late.push(r);
      this.closes.push(rows.close);
      return { kind: 'period_close' };
    }
    if (checked.kind === 'window') {
      const row = toWindowRow(checked.record);
      const key = `${row.window_start}|${row.advertiser_id}|${row.campaign_id}|${row.source_partition}`;
      const held = this.windows.get(key);
      // Equal versions carry the same counts; the later one wins all the same.
      if (held === undefined || row.version >= held.row.version) this.windows.set(key, { row, breakdowns: checked.record.breakdowns });
      return { kind: 'window' };
    }
    const wm = toWatermarkRow(checked.record);
    const held = this.watermarks.get(wm.source_partition);
    if (held === undefined || wm.watermark_ms >= held.watermark_ms) this.watermarks.set(wm.source_partition, wm);
    return { kind: 'watermark' };
  }

  /** Period closes in the batch. */
  get closeCount(): number {
    return this.closes.length;
  }

  /** Records added (rows, watermarks, tombstones and poison alike). */
  get records(): number {
    return this.recordCount;
  }

  /** Rows this batch will insert (all tables but the breakdowns, which are expanded at insert). */
  get rowCount(): number {
    return this.windows.size + this.watermarks.size + this.ledger.length + this.late.length + this.closes.length;
  }

  get isEmpty(): boolean {
    return this.recordCount === 0;
  }

  /** Epoch ms of the first record, or undefined while empty. */
  get firstRecordAt(): number | undefined {
    return this.openedAt;
  }

  windowRows(): ImpressionCountRow[] {
    return [...this.windows.values()].map((w) => w.row);
  }

  /** Every value of every dimension of the kept window rows, with their row's version. */
  breakdownRows(): ImpressionBreakdownRow[] {
    const out: ImpressionBreakdownRow[] = [];
    for (const { row, breakdowns } of this.windows.values()) {
      if (breakdowns === undefined) continue;
      for (const [dimension, entries] of Object.entries(breakdowns) as Array<[Dimension, BreakdownEntries]>) {
        for (const [value, impressions, spend] of entries) {
          out.push({
            window_start: row.window_start, window_end: row.window_end, advertiser_id: row.advertiser_id, campaign_id: row.campaign_id,
            source_partition: row.source_partition, dimension, value, impressions, spend_micros: spend, version: row.version,
          });
        }
      }
    }
    return out;
  }

  watermarkRows(): PartitionWatermarkRow[] {
    return [...this.watermarks.values()];
  }

  /**
   * Every non-empty table of the batch, in the order they must land: window rows and their
   * breakdowns, then the ledger
   * and late rows of period closes, then the close rows (a close row says its ledger rows are in),
   * then the watermarks (a watermark row never lands before the rows it closes).
   */
  inserts(): CountsTableInsert[] {
    const all: CountsTableInsert[] = [
      { table: 'impression_counts', columns: IMPRESSION_COUNT_COLUMNS, values: this.windowRows() },
      { table: 'impression_breakdowns', columns: IMPRESSION_BREAKDOWN_COLUMNS, values: this.breakdownRows() },
      { table: 'billing_ledger', columns: LEDGER_COLUMNS, values: this.ledger },
      { table: 'billing_late', columns: LATE_COLUMNS, values: this.late },
      { table: 'period_closes', columns: PERIOD_CLOSE_COLUMNS, values: this.closes },
      { table: 'partition_watermarks', columns: PARTITION_WATERMARK_COLUMNS, values: this.watermarkRows() },
    ];
    return all.filter((t) => t.values.length > 0);
  }

  /** Per Kafka partition the offset to commit: last offset added + 1. */
  offsets(): PartitionOffset[] {
    return this.nextOffsets.entries();
  }

  clear(): void {
    this.windows.clear();
    this.watermarks.clear();
    this.ledger.length = 0;
    this.late.length = 0;
    this.closes.length = 0;
    this.nextOffsets.clear();
    this.recordCount = 0;
    this.openedAt = undefined;
  }
}

/** The ClickHouse row of a checked window record (DateTime in seconds, booleans as 0/1). */
function toWindowRow(r: WindowCountRecord): ImpressionCountRow {
  return {
    window_start: Math.floor(r.window_start / 1000),
    window_end: Math.floor(r.window_end / 1000),
    advertiser_id: r.advertiser_id,
    campaign_id: r.campaign_id,
    source_partition: r.source_partition,
    impressions: r.impressions,
    spend_micros: r.spend_micros,
    duplicates: r.duplicates,
    version: r.version,
    final: r.final ? 1 : 0,
    revised: r.revised ? 1 : 0,
  };
}

function toWatermarkRow(r: WatermarkRecord): PartitionWatermarkRow {
  return {
    source_partition: r.source_partition,
    watermark_ms: r.watermark,
    max_event_time_ms: r.max_event_time,
    updated_at: Math.floor(r.emitted_at / 1000),
    version: Math.max(0, r.watermark),
  };
}
