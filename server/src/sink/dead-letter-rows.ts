/**
 * The `dead_letters` rows of impressions-dlq records, pure: a row per record, keyed by the input
 * record it came from (reason, source topic/partition/offset), so a record inserted twice (a crash
 * or a rebalance between insert and commit) is stored once — ReplacingMergeTree keeps one, and
 * every reader uses FINAL.
 */
import type Kafka from 'node-rdkafka';
import { arrivalPeriodOf, DLQ_HEADER, headerValue, MAX_DETAIL_CHARS, NO_REASON } from '../contracts/dead-letter.js';
import { ID_PATTERN } from '../contracts/ids.js';
import { parseImpression } from '../impression/index.js';
import type { SinkBatch, TableInsert } from './batch-target.js';
import { PartitionOffsets, type PartitionOffset } from './partition-offsets.js';

/** Values larger than this are not parsed for advertiser and time (they are too_large letters anyway). */
const MAX_PARSE_BYTES = 1 << 20;
const MAX_DATETIME_S = 4_294_967_295;
const MAX_UINT16 = 65_535;

/** A row of `dead_letters` as sent in JSONEachRow (event_ts and arrival_period as epoch seconds). */
export interface DeadLetterRow {
  reason: string;
  detail: string;
  source_topic: string;
  source_partition: number;
  source_offset: number;
  dlq_partition: number;
  dlq_offset: number;
  advertiser_id: string;
  event_ts: number;
  /** too_late: the billing period it is reported in (header arrival-period); 0 without one. */
  arrival_period: number;
}

export const DEAD_LETTER_COLUMNS: [keyof DeadLetterRow, ...Array<keyof DeadLetterRow>] = [
  'reason', 'detail', 'source_topic', 'source_partition', 'source_offset', 'dlq_partition', 'dlq_offset', 'advertiser_id', 'event_ts', 'arrival_period',
];

export interface DeadLetterRecord {
  topic: string;
  partition: number;
  offset: number;
  value: Buffer | null | undefined;
  headers?: Kafka.MessageHeader[];
}

function uintHeader(v: string | undefined, max: number): number | undefined {
  if (v === undefined || !/^\d{1,16}$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n <= max ? n : undefined;
}

/** Advertiser id and event time (epoch s) carried by a dead letter's value, as far as they can be read. */
export function deadLetterSubject(value: Buffer | null | undefined): { advertiserId: string; eventTs: number } {
  const none = { advertiserId: '', eventTs: 0 };
  if (!value || value.length === 0 || value.length > MAX_PARSE_BYTES) return none;
  // A valid event (too_late, future_timestamp): read exactly as the aggregator read it.
  const parsed = parseImpression(value);
  if (parsed.ok) {
    const s = Math.floor(parsed.impression.ts / 1000);
    return { advertiserId: parsed.impression.advertiserId, eventTs: s >= 0 && s <= MAX_DATETIME_S ? s : 0 };
  }
  let obj: unknown;
  try {
    obj = JSON.parse(value.toString('utf8'));
  } catch {
    return none;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return none;
  const o = obj as Record<string, unknown>;
  const advertiserId = typeof o.advertiser_id === 'string' && ID_PATTERN.test(o.advertiser_id) ? o.advertiser_id : '';
  let eventTs = 0;
  if (typeof o.ts === 'number' && Number.isSafeInteger(o.ts) && o.ts >= 0) {
    const s = Math.floor(o.ts / 1000);
    if (s <= MAX_DATETIME_S) eventTs = s;
  } else if (typeof o.ts === 'string') {
    const ms = Date.parse(o.ts);
    if (/(Z|[+-]\d{2}:\d{2})$/.test(o.ts) && Number.isFinite(ms) && ms >= 0 && ms / 1000 <= MAX_DATETIME_S) eventTs = Math.floor(ms / 1000);
  }
  return { advertiserId, eventTs };
}

/**
 * The row for a record of the DLQ. Its identity is the input record it came from (headers
 * source-topic/-partition/-offset, written by the aggregator); a record without them (not
 * written by tally) is keyed by its own DLQ coordinates instead, so it is still stored once.
 */
export function toDeadLetterRow(m: DeadLetterRecord): DeadLetterRow {
  const srcTopic = headerValue(m, DLQ_HEADER.sourceTopic);
  const srcPartition = uintHeader(headerValue(m, DLQ_HEADER.sourcePartition), MAX_UINT16);
  const srcOffset = uintHeader(headerValue(m, DLQ_HEADER.sourceOffset), Number.MAX_SAFE_INTEGER);
  const fromHeaders = srcTopic !== undefined && srcTopic !== '' && srcPartition !== undefined && srcOffset !== undefined;
  const { advertiserId, eventTs } = deadLetterSubject(m.value);
  const arrivalMs = arrivalPeriodOf(m) ?? 0;
  return {
    reason: headerValue(m, DLQ_HEADER.reason) ?? NO_REASON,
    detail: (headerValue(m, DLQ_HEADER.detail) ?? '').slice(0, MAX_DETAIL_CHARS),
    source_topic: fromHeaders ? srcTopic : m.topic,
    source_partition: fromHeaders ? srcPartition : m.partition,
    source_offset: fromHeaders ? srcOffset : m.offset,
    dlq_partition: m.partition,
    dlq_offset: m.offset,
    advertiser_id: advertiserId,
    event_ts: eventTs,
    arrival_period: arrivalMs / 1000 <= MAX_DATETIME_S ? arrivalMs / 1000 : 0,
  };
}

/** The dead-letter sink's batch: a row per record, and the offsets to commit once they are in. */
export class DeadLetterBatch implements SinkBatch {
  private readonly rows: DeadLetterRow[] = [];
  private readonly nextOffsets = new PartitionOffsets();
  private openedAt: number | undefined;

  add(m: DeadLetterRecord, now = Date.now()): void {
    this.rows.push(toDeadLetterRow(m));
    this.nextOffsets.advance(m.partition, m.offset + 1);
    this.openedAt ??= now;
  }

  get isEmpty(): boolean {
    return this.rows.length === 0;
  }

  get records(): number {
    return this.rows.length;
  }

  get rowCount(): number {
    return this.rows.length;
  }

  get firstRecordAt(): number | undefined {
    return this.openedAt;
  }

  inserts(): TableInsert[] {
    return this.rows.length === 0 ? [] : [{ table: 'dead_letters', columns: DEAD_LETTER_COLUMNS, values: this.rows }];
  }

  offsets(): PartitionOffset[] {
    return this.nextOffsets.entries();
  }

  clear(): void {
    this.rows.length = 0;
    this.nextOffsets.clear();
    this.openedAt = undefined;
  }
}
