/**
 * The wire format of the `impression-counts` topic. Produced by the aggregator (one transaction
 * per commit interval); consumed by the sink (→ ClickHouse), the live feed, and the tools'
 * watermark gate. Compacted by key; a null value (tombstone) marks an evicted window and is
 * ignored downstream (ClickHouse keeps the row).
 *
 *   key `${windowStart}|${advertiserId}|${campaignId}|${sourcePartition}` → WindowCountRecord (rowKey)
 *   key `watermark|${sourcePartition}`                                   → WatermarkRecord (watermarkKey)
 *   key `close|${periodStart}|${sourcePartition}`                         → PeriodCloseRecord (period-close-record.ts)
 *
 * The window key is also ClickHouse's ReplacingMergeTree key. A window's row is tombstoned once
 * its billing period closes (its counts live on in the close). The watermark record doubles as the
 * aggregator's progress record: the fields past the first four are its own restore state
 * (aggregator/progress-record.ts).
 */
import { DIMENSIONS, isDimension, isDimensionValue, type Dimension } from './dimensions.js';
import { microsJson } from './micros.js';
import { periodCloseProblem, type PeriodCloseRecord } from './period-close-record.js';

/** One output row, decoded: the counts of one (window, advertiser, campaign) in one source partition. */
export interface WindowRow {
  windowStart: number;
  windowEnd: number;
  advertiserId: string;
  campaignId: string;
  sourcePartition: number;
  impressions: number;
  /** Exact at any size: one row's spend can pass 2^53 micros. */
  spendMicros: bigint;
  duplicates: number;
  /** Increases by one with every emitted change of this row; ClickHouse keeps the highest. */
  version: number;
  /** The watermark had passed windowEnd + allowedLateness when this version was emitted. */
  final: boolean;
  /** This version changed the row after it had been final (late data within the dedup horizon). */
  revised: boolean;
  /** The row by each configured dimension (TALLY_DIMENSIONS); each sums to the row's impressions and spend. Absent: none configured. */
  breakdowns?: DimensionBreakdown[];
}

/** One dimension of a window row: every value with its counts (contracts/dimensions.ts). */
export interface DimensionBreakdown {
  dimension: Dimension;
  values: Array<{ value: string; impressions: number; spendMicros: bigint }>;
}

/** A dimension's values in a window record: [value, impressions, spend_micros], spend as micros are written. */
export type BreakdownEntries = Array<[string, number, number | string]>;

export interface WindowCountRecord {
  type: 'window';
  window_start: number;
  window_end: number;
  advertiser_id: string;
  campaign_id: string;
  source_partition: number;
  impressions: number;
  /** A JSON number while below 2^53, else a string of digits: exact at any size. */
  spend_micros: number | string;
  duplicates: number;
  version: number;
  final: boolean;
  revised: boolean;
  /** Absent when no dimension is configured (and in records written before breakdowns existed). */
  breakdowns?: Partial<Record<Dimension, BreakdownEntries>>;
}

/**
 * One partition's event-time progress. Readers downstream use `watermark` (and `closed_through`);
 * the other fields are the aggregator's own state for its restore. Records written before these
 * fields existed carry only the first four.
 */
export interface WatermarkRecord {
  type: 'watermark';
  source_partition: number;
  /** Event-time watermark in ms: the minimum over the partition's inputs. */
  watermark: number;
  max_event_time: number;
  /** Wall clock of the transaction that wrote it. */
  emitted_at: number;
  /** Windows ending at or before this are final (never goes back, whatever the lateness setting). */
  closed_through?: number;
  /** Windows starting before this passed the dedup horizon (evicted; their events are too_late). */
  evicted_before?: number;
  source_watermark?: number;
  /** [watermark, idle 0/1, position or null] of every input, by source partition. */
  inputs?: Array<[number, 0 | 1, number | null] | [number, 0 | 1]>;
  window_ms?: number;
  partitions?: number;
  /** Billing periods starting before this are closed in this partition. */
  periods_closed_before?: number;
  /** [period start, first source offset, first repartition offset, [[advertiser, original period, events]…]] of each open period. */
  open_periods?: Array<[number, number | null, number | null, Array<[string, number, number]>]>;
}

export type CountRecord = WindowCountRecord | WatermarkRecord | PeriodCloseRecord;

export function watermarkKey(partition: number): string {
  return `watermark|${partition}`;
}

/** The row's dedup id: `${windowStart}|${advertiserId}|${campaignId}|${sourcePartition}`; '|' cannot occur in ids. */
export function rowKey(windowStart: number, advertiserId: string, campaignId: string, sourcePartition: number): string {
  return `${windowStart}|${advertiserId}|${campaignId}|${sourcePartition}`;
}

export interface RowKeyParts {
  windowStart: number;
  advertiserId: string;
  campaignId: string;
  sourcePartition: number;
}

// Number() alone would accept ' 12', '1e3' or '0x10', which rowKey never writes.
const INTEGER = /^-?\d+$/;
const PARTITION = /^\d+$/;

/** Inverse of rowKey; throws on anything rowKey cannot have produced (e.g. the `watermark|p` key). */
export function parseRowKey(key: string): RowKeyParts {
  const parts = key.split('|');
  if (parts.length !== 4) throw new Error(`not a row key: ${key}`);
  const [start, advertiserId, campaignId, partition] = parts;
  const windowStart = Number(start);
  const sourcePartition = Number(partition);
  if (!INTEGER.test(start) || !Number.isSafeInteger(windowStart) || advertiserId === '' || campaignId === ''
    || !PARTITION.test(partition) || !Number.isSafeInteger(sourcePartition)) {
    throw new Error(`not a row key: ${key}`);
  }
  return { windowStart, advertiserId, campaignId, sourcePartition };
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
    spend_micros: microsJson(row.spendMicros),
    duplicates: row.duplicates,
    version: row.version,
    final: row.final,
    revised: row.revised,
  };
  if (row.breakdowns !== undefined && row.breakdowns.length > 0) {
    const breakdowns: Partial<Record<Dimension, BreakdownEntries>> = {};
    for (const b of row.breakdowns) breakdowns[b.dimension] = b.values.map((v) => [v.value, v.impressions, microsJson(v.spendMicros)]);
    rec.breakdowns = breakdowns;
  }
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
    spendMicros: BigInt(rec.spend_micros),
    duplicates: rec.duplicates,
    version: rec.version,
    final: rec.final,
    revised: rec.revised,
    ...(rec.breakdowns === undefined ? {} : { breakdowns: decodeBreakdowns(rec.breakdowns) }),
  };
}

function decodeBreakdowns(breakdowns: Partial<Record<Dimension, BreakdownEntries>>): DimensionBreakdown[] {
  return DIMENSIONS.flatMap((dimension) => {
    const entries = breakdowns[dimension];
    return entries === undefined ? [] : [{
      dimension, values: entries.map(([value, impressions, spend]) => ({ value, impressions, spendMicros: BigInt(spend) })),
    }];
  });
}

export function encodeWatermark(rec: Omit<WatermarkRecord, 'type'>): Buffer {
  return Buffer.from(JSON.stringify({ type: 'watermark', ...rec } satisfies WatermarkRecord));
}

/** Parses a value of the counts topic; null for a tombstone. Throws on a record tally did not write. */
export function decodeCountRecord(value: Buffer | null | undefined): CountRecord | null {
  if (!value || value.length === 0) return null;
  const rec = JSON.parse(value.toString('utf8')) as CountRecord;
  if (rec.type !== 'window' && rec.type !== 'watermark' && rec.type !== 'period_close') throw new Error(`unknown count record type ${String((rec as { type?: unknown }).type)}`);
  return rec;
}

/** A value of the counts topic as a reader may use it: checked field by field, never trusted blindly. */
export type CheckedCountRecord =
  | { kind: 'window'; record: WindowCountRecord }
  | { kind: 'watermark'; record: WatermarkRecord }
  | { kind: 'period_close'; record: PeriodCloseRecord }
  | { kind: 'tombstone' }
  /** Not a record tally wrote (not JSON, unknown type, a field out of range): the reason names the first bad field. */
  | { kind: 'poison'; reason: string };

/** DateTime (UInt32 seconds) covers epoch ms in [0, 2^32 · 1000). */
const MAX_DATETIME_MS = 4_294_967_296_000 - 1;
const MAX_PARTITION = 65_535;

function isUint(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

const DIGITS = /^(0|[1-9]\d{0,19})$/;
const MAX_UINT64 = 2n ** 64n - 1n;

/** Micros as written by encodeMicros: a safe integer ≥ 0, or digits of a value that fits UInt64. */
function isMicros(v: unknown): boolean {
  if (typeof v === 'number') return isUint(v);
  return typeof v === 'string' && DIGITS.test(v) && BigInt(v) <= MAX_UINT64;
}

/**
 * Decodes a value of the counts topic and checks that every field is what the aggregator writes
 * and ClickHouse can store (the sink and the live feed share this one gate).
 */
export function checkCountRecord(value: Buffer | null | undefined): CheckedCountRecord {
  let rec: CountRecord | null;
  try {
    rec = decodeCountRecord(value);
  } catch (err) {
    return { kind: 'poison', reason: err instanceof SyntaxError ? 'not_json' : 'unknown_type' };
  }
  if (rec === null) return { kind: 'tombstone' };
  if (typeof rec !== 'object' || Array.isArray(rec)) return { kind: 'poison', reason: 'unknown_type' };
  if (rec.type === 'period_close') {
    const problem = periodCloseProblem(rec);
    return problem === null ? { kind: 'period_close', record: rec } : { kind: 'poison', reason: problem };
  }
  if (rec.type === 'watermark') {
    if (!isUint(rec.source_partition, MAX_PARTITION)) return { kind: 'poison', reason: 'bad_source_partition' };
    if (!isInt(rec.watermark)) return { kind: 'poison', reason: 'bad_watermark' };
    if (!isInt(rec.max_event_time)) return { kind: 'poison', reason: 'bad_max_event_time' };
    if (!isUint(rec.emitted_at, MAX_DATETIME_MS)) return { kind: 'poison', reason: 'bad_emitted_at' };
    return { kind: 'watermark', record: rec };
  }
  if (!isUint(rec.window_start, MAX_DATETIME_MS)) return { kind: 'poison', reason: 'bad_window_start' };
  if (!isUint(rec.window_end, MAX_DATETIME_MS) || rec.window_end <= rec.window_start) return { kind: 'poison', reason: 'bad_window_end' };
  if (typeof rec.advertiser_id !== 'string' || rec.advertiser_id === '') return { kind: 'poison', reason: 'bad_advertiser_id' };
  if (typeof rec.campaign_id !== 'string' || rec.campaign_id === '') return { kind: 'poison', reason: 'bad_campaign_id' };
  if (!isUint(rec.source_partition, MAX_PARTITION)) return { kind: 'poison', reason: 'bad_source_partition' };
  if (!isUint(rec.impressions)) return { kind: 'poison', reason: 'bad_impressions' };
  if (!isMicros(rec.spend_micros)) return { kind: 'poison', reason: 'bad_spend_micros' };
  if (!isUint(rec.duplicates)) return { kind: 'poison', reason: 'bad_duplicates' };
  if (!isUint(rec.version)) return { kind: 'poison', reason: 'bad_version' };
  if (typeof rec.final !== 'boolean') return { kind: 'poison', reason: 'bad_final' };
  if (typeof rec.revised !== 'boolean') return { kind: 'poison', reason: 'bad_revised' };
  if (rec.breakdowns !== undefined && !breakdownsAddUp(rec)) return { kind: 'poison', reason: 'bad_breakdowns' };
  return { kind: 'window', record: rec };
}

/**
 * Every dimension of the record is a known one whose entries are distinct usable values with
 * counts, and sums to the row's impressions and spend exactly (else the sink would store a
 * breakdown that does not add up to its campaign).
 */
function breakdownsAddUp(rec: WindowCountRecord): boolean {
  const b: unknown = rec.breakdowns;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return false;
  const rowSpend = BigInt(rec.spend_micros);
  for (const [dimension, entries] of Object.entries(b)) {
    if (!isDimension(dimension) || !Array.isArray(entries)) return false;
    const seen = new Set<string>();
    let impressions = 0;
    let spend = 0n;
    for (const entry of entries as unknown[]) {
      if (!Array.isArray(entry) || entry.length !== 3) return false;
      const [value, n, micros] = entry as unknown[];
      if (typeof value !== 'string' || !isDimensionValue(value) || seen.has(value) || !isUint(n) || !isMicros(micros)) return false;
      seen.add(value);
      impressions += n;
      spend += BigInt(micros as number | string);
    }
    if (impressions !== rec.impressions || spend !== rowSpend) return false;
  }
  return true;
}
