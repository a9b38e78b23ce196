import type Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { BatchSink } from './batch-sink.js';
import type { SinkOptions } from './batch-target.js';
import { ConsumerLag } from './consumer-lag.js';
import { FinalPeriodRoller } from './period-rollup.js';
import { RowBatch } from './row-batch.js';
import { SinkMetrics } from './sink-metrics.js';
import { SinkService } from './sink-service.js';

export type ClickHouseSinkOptions = SinkOptions;

/**
 * `tally sink`: impression-counts (read_committed, group `tally-clickhouse-sink`) → ClickHouse,
 * through the batch-sink loop (batch-sink.ts: insert, then commit; backoff while polling; a
 * rebalance voids the batch). A batch is bounded by TALLY_SINK_BATCH_ROWS rows and
 * TALLY_SINK_BATCH_MS, and lands in `impression_counts`, the billing ledger tables
 * (`billing_ledger`, `billing_late`, `period_closes`) and `partition_watermarks`, in that order
 * (RowBatch). Nothing is ever skipped except records tally did not write (poison: logged and
 * counted). After a batch with period closes, newly final periods are rolled up into
 * `billing_statement` in the background.
 */
export class ClickHouseSink extends SinkService {
  readonly metrics = new SinkMetrics();
  protected readonly loop: BatchSink;
  private readonly lag: ConsumerLag;
  private readonly roller: FinalPeriodRoller;

  constructor(config: TallyConfig, private readonly log: Logger, opts: ClickHouseSinkOptions = {}) {
    super();
    const batch = new RowBatch();
    const { batchRows, batchMs } = config.sink;
    this.loop = new BatchSink(config, {
      ...opts,
      events: 'sink',
      name: 'tally-sink',
      topic: config.topics.counts,
      group: config.groups.sink,
      batchRows,
      batchMs,
      metrics: this.metrics,
      describe: { database: config.clickhouse.database, batchRows, batchMs },
    }, {
      batch,
      started: () => this.roller.request(), // periods that became final while no sink ran
      add: (m, now) => this.add(batch, m, now),
      inserted: () => {
        if (batch.closeCount > 0) this.roller.request();
      },
      committed: (offsets) => this.lag.committed(offsets),
      assigned: (partitions) => this.lag.assigned(partitions),
      revoked: () => this.lag.revoked(),
      polled: () => this.lag.update(false),
      drain: () => this.roller.idle(),
    }, log);
    this.lag = new ConsumerLag(this.loop.consumer, config.topics.counts, this.metrics.lag);
    this.roller = new FinalPeriodRoller(this.loop.clickhouse, config.clickhouse.database, config.partitions, log);
  }

  /** Decodes a record into the batch; a record tally did not write is logged and counted, its offset still moves. */
  private add(batch: RowBatch, m: Kafka.Message, now: number): void {
    const outcome = batch.add(m.partition, m.offset, m.value, now);
    this.metrics.recordsConsumed.inc({ kind: outcome.kind });
    if (outcome.kind !== 'poison') return;
    this.metrics.poisonRecords.inc({ reason: outcome.reason });
    this.log.error({
      topic: m.topic, partition: m.partition, offset: m.offset, reason: outcome.reason,
      key: m.key === undefined || m.key === null ? null : String(m.key).slice(0, 200),
      valuePrefix: m.value ? m.value.subarray(0, 120).toString('utf8') : null,
    }, 'sink.poison_record');
  }
}
