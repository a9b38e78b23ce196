/**
 * The dead-letter topic (`impressions-dlq`): an event that cannot be counted, with why and where it
 * came from. Produced by the aggregator (partition-task). Consumed by the dead-letter sink
 * (→ ClickHouse), the live feed (counts by reason for the pipeline status) and the tools (verify,
 * reconcile).
 *
 *   key      the input record's key, unchanged
 *   value    the input record's bytes, unchanged
 *   headers  reason             a DeadLetterReason (dead-letter-reasons.ts)
 *            detail             what was wrong, at most MAX_DETAIL_CHARS characters
 *            source-topic       the input record it came from: for a copy forwarded through the
 *            source-partition   repartition topic, the original record on `impressions`, so a
 *            source-offset      replay finds the same key
 *            arrival-period     too_late only: the billing period (UTC hour, epoch ms) the task's
 *                               watermark was in when it refused the event, where statements report it
 */
import type Kafka from 'node-rdkafka';
import type { DeadLetterReason } from './dead-letter-reasons.js';

/** The header names, as written. */
export const DLQ_HEADER = {
  reason: 'reason',
  detail: 'detail',
  sourceTopic: 'source-topic',
  sourcePartition: 'source-partition',
  sourceOffset: 'source-offset',
  arrivalPeriod: 'arrival-period',
} as const;

/** A billing period is a UTC hour (aggregator/core PERIOD_MS). */
const PERIOD_MS = 3_600_000;

/** Longest `detail` header written (and read). */
export const MAX_DETAIL_CHARS = 500;

/** Key under which records without a `reason` header are counted. */
export const NO_REASON = '(none)';

export interface DeadLetterOrigin {
  reason: DeadLetterReason;
  detail: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  /** too_late only: the period (epoch ms) of the watermark at refusal. */
  arrivalPeriod?: number;
}

/** A dead letter's headers, in the order the aggregator writes them. */
export function deadLetterHeaders(d: DeadLetterOrigin): Kafka.MessageHeader[] {
  return [
    { [DLQ_HEADER.reason]: d.reason },
    { [DLQ_HEADER.detail]: d.detail.slice(0, MAX_DETAIL_CHARS) },
    { [DLQ_HEADER.sourceTopic]: d.sourceTopic },
    { [DLQ_HEADER.sourcePartition]: String(d.sourcePartition) },
    { [DLQ_HEADER.sourceOffset]: String(d.sourceOffset) },
    ...(d.arrivalPeriod === undefined ? [] : [{ [DLQ_HEADER.arrivalPeriod]: String(d.arrivalPeriod) }]),
  ];
}

/** The arrival period (epoch ms of a UTC hour) a dead letter carries, or undefined (none, or not a period start). */
export function arrivalPeriodOf(m: { headers?: Kafka.MessageHeader[] }): number | undefined {
  const v = headerValue(m, DLQ_HEADER.arrivalPeriod);
  if (v === undefined || !/^\d{1,16}$/.test(v)) return undefined;
  const ms = Number(v);
  return Number.isSafeInteger(ms) && ms % PERIOD_MS === 0 ? ms : undefined;
}

/** The value of a record's header `name` as UTF-8, or undefined. */
export function headerValue(m: { headers?: Kafka.MessageHeader[] }, name: string): string | undefined {
  for (const h of m.headers ?? []) {
    if (Object.prototype.hasOwnProperty.call(h, name)) {
      const v = h[name];
      return typeof v === 'string' ? v : Buffer.from(v).toString('utf8');
    }
  }
  return undefined;
}
