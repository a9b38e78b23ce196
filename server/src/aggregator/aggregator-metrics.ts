import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The aggregator's Prometheus metrics; names prefixed tally_aggregator_. */
export class AggregatorMetrics {
  readonly registry = new Registry();
  readonly consumed = new Counter({ name: 'tally_aggregator_events_consumed_total', help: 'Impression records read (from the input and forwarded), markers excluded', registers: [this.registry] });
  readonly counted = new Counter({ name: 'tally_aggregator_events_counted_total', help: 'Impressions counted (first sighting of an id)', registers: [this.registry] });
  readonly duplicates = new Counter({ name: 'tally_aggregator_duplicates_total', help: 'Impressions seen again within the dedup horizon (whatever their timestamp) and not counted', registers: [this.registry] });
  readonly forwarded = new Counter({ name: 'tally_aggregator_forwarded_total', help: 'Records read outside their home partition and forwarded there', registers: [this.registry] });
  readonly deadLetters = new Counter({ name: 'tally_aggregator_dead_letters_total', help: 'Records sent to the DLQ, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly transactions = new Counter({ name: 'tally_aggregator_transactions_total', help: 'Transactions by outcome', labelNames: ['outcome'], registers: [this.registry] });
  readonly commitSeconds = new Histogram({
    name: 'tally_aggregator_commit_duration_seconds', help: 'Time of one transaction (begin → commit)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly restoreSeconds = new Histogram({
    name: 'tally_aggregator_restore_duration_seconds', help: 'Time to rebuild assigned partitions from the changelog',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60], registers: [this.registry],
  });
  readonly lastCommitTimestamp = new Gauge({ name: 'tally_aggregator_last_commit_timestamp_seconds', help: 'Wall clock of the last committed transaction', registers: [this.registry] });
  readonly lag = new Gauge({ name: 'tally_aggregator_consumer_lag', help: 'Input records not yet committed, per partition', labelNames: ['partition'], registers: [this.registry] });
  readonly watermark = new Gauge({ name: 'tally_aggregator_watermark_ms', help: 'Event-time watermark per partition (ms): the minimum over its inputs', labelNames: ['partition'], registers: [this.registry] });
  readonly inputWatermark = new Gauge({
    name: 'tally_aggregator_input_watermark_ms', help: 'Per partition, each input\'s watermark as last heard (ms); the lowest non-idle one holds the partition back',
    labelNames: ['partition', 'input'], registers: [this.registry],
  });
  readonly inputIdle = new Gauge({ name: 'tally_aggregator_input_idle', help: 'Per partition, 1 for each input last reported idle', labelNames: ['partition', 'input'], registers: [this.registry] });
  readonly markers = new Counter({ name: 'tally_aggregator_markers_total', help: 'Watermark markers read on the repartition channels', registers: [this.registry] });
  readonly windowsOpen = new Gauge({ name: 'tally_aggregator_windows_open', help: 'Windows held in memory (until the dedup horizon)', registers: [this.registry] });
  readonly idsHeld = new Gauge({ name: 'tally_aggregator_dedup_ids', help: 'Impression ids held for dedup', registers: [this.registry] });
  readonly dedupBytes = new Gauge({ name: 'tally_aggregator_dedup_bytes', help: 'Bytes of the dedup index', registers: [this.registry] });
  readonly assigned = new Gauge({ name: 'tally_aggregator_partitions_assigned', help: 'Input partitions owned by this process', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tally_aggregator_' });
  }
}
