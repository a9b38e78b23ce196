import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The ClickHouse sink's Prometheus metrics; names prefixed tally_sink_. */
export class SinkMetrics {
  readonly registry = new Registry();
  readonly recordsConsumed = new Counter({
    name: 'tally_sink_records_consumed_total', help: 'Records read from impression-counts, by kind (window, watermark, tombstone, poison)',
    labelNames: ['kind'], registers: [this.registry],
  });
  readonly poisonRecords = new Counter({
    name: 'tally_sink_poison_records_total', help: 'Records on impression-counts that tally did not write (skipped), by reason',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly rowsInserted = new Counter({
    name: 'tally_sink_rows_inserted_total', help: 'Rows ClickHouse acknowledged, by table', labelNames: ['table'], registers: [this.registry],
  });
  readonly batches = new Counter({
    name: 'tally_sink_batches_total', help: 'Batches by outcome (committed, discarded by a rebalance, abandoned at shutdown)',
    labelNames: ['outcome'], registers: [this.registry],
  });
  readonly insertSeconds = new Histogram({
    name: 'tally_sink_insert_duration_seconds', help: 'Time of one successful ClickHouse insert of a batch (both tables)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry],
  });
  readonly insertFailures = new Counter({
    name: 'tally_sink_insert_failures_total', help: 'Failed ClickHouse insert attempts (each is retried)', registers: [this.registry],
  });
  readonly commitFailures = new Counter({
    name: 'tally_sink_commit_failures_total', help: 'Failed Kafka offset commits (retried with the next batch; rows re-read at worst)', registers: [this.registry],
  });
  readonly waitingForClickHouse = new Gauge({
    name: 'tally_sink_waiting_for_clickhouse', help: '1 while a batch waits for ClickHouse to come back (consumption paused)', registers: [this.registry],
  });
  readonly lastInsertTimestamp = new Gauge({
    name: 'tally_sink_last_insert_timestamp_seconds', help: 'Wall clock of the last acknowledged insert', registers: [this.registry],
  });
  readonly lag = new Gauge({
    name: 'tally_sink_consumer_lag', help: 'Records of impression-counts not yet committed by the sink, per partition',
    labelNames: ['partition'], registers: [this.registry],
  });
  readonly assigned = new Gauge({
    name: 'tally_sink_partitions_assigned', help: 'Partitions of impression-counts owned by this process', registers: [this.registry],
  });
  readonly rebalances = new Counter({
    name: 'tally_sink_rebalances_total', help: 'Rebalance events by kind (assign, revoke)', labelNames: ['kind'], registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tally_sink_' });
  }
}
