import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TokenStoreStats } from '../auth/index.js';
import type { IngestMetrics } from '../ingest/index.js';

/**
 * The API process's Prometheus metrics (GET /metrics); names prefixed tally_api_ and tally_ingest_.
 * `route` is the route pattern (/api/v1/counts, web, unmatched…), never the raw URL, so the
 * number of series stays bounded whatever clients send.
 */
export class ApiMetrics implements IngestMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'tally_api_http_requests_total', help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'], registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'tally_api_http_request_duration_seconds', help: 'Time to answer an HTTP request, by method, route and status',
    labelNames: ['method', 'route', 'status'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'tally_api_auth_failures_total', help: 'Requests refused with 401, by reason (missing, invalid)',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly eventsAccepted = new Counter({
    name: 'tally_ingest_events_accepted_total', help: 'Events of POST /api/v1/impressions acknowledged by Kafka', registers: [this.registry],
  });
  readonly eventsRejected = new Counter({
    name: 'tally_ingest_events_rejected_total', help: 'Events of POST /api/v1/impressions refused, by reason (the DLQ vocabulary)',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly produceFailures = new Counter({
    name: 'tally_ingest_produce_failures_total', help: 'Ingest requests answered 503 because Kafka did not acknowledge in time',
    registers: [this.registry],
  });
  readonly ackSeconds = new Histogram({
    name: 'tally_ingest_ack_duration_seconds', help: 'Time from producing an ingest batch to the broker acknowledging all of it',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tally_api_' });
  }

  /** tally_api_token_lookups_total{outcome}: ClickHouse round trips, and refusals without one. */
  observeTokenStore(stats: () => TokenStoreStats): void {
    new Counter({
      name: 'tally_api_token_lookups_total',
      help: 'Token checks by outcome: clickhouse (a round trip), unknown_cached (refused by the negative cache), busy (refused, too many in flight)',
      labelNames: ['outcome'], registers: [this.registry],
      collect() {
        const s = stats();
        this.reset();
        this.inc({ outcome: 'clickhouse' }, s.lookups);
        this.inc({ outcome: 'unknown_cached' }, s.unknownCached);
        this.inc({ outcome: 'busy' }, s.busy);
      },
    });
  }
}
