import type { Counter, Histogram } from 'prom-client';

/**
 * The counters ingest updates (tally_ingest_*). The API process registers them with its own
 * metrics (api/api-metrics.ts, ApiMetrics implements this) and hands them to `ingestHandlers`.
 */
export interface IngestMetrics {
  /** Events acknowledged by Kafka. */
  readonly eventsAccepted: Counter;
  /** Events refused, by reason (the DLQ vocabulary, plus advertiser_not_allowed). */
  readonly eventsRejected: Counter;
  /** Requests answered 503 because Kafka did not acknowledge in time. */
  readonly produceFailures: Counter;
  /** Seconds from producing a batch to the broker acknowledging all of it. */
  readonly ackSeconds: Histogram;
}
