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
} as const;

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
}

/** A dead letter's headers, in the order the aggregator writes them. */
export function deadLetterHeaders(d: DeadLetterOrigin): Kafka.MessageHeader[] {
  return [
    { [DLQ_HEADER.reason]: d.reason },
    { [DLQ_HEADER.detail]: d.detail.slice(0, MAX_DETAIL_CHARS) },
    { [DLQ_HEADER.sourceTopic]: d.sourceTopic },
    { [DLQ_HEADER.sourcePartition]: String(d.sourcePartition) },
    { [DLQ_HEADER.sourceOffset]: String(d.sourceOffset) },
  ];
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
