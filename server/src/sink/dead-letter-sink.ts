/**
 * The dead-letter sink (started by `tally sink` next to the counts sink): impressions-dlq
 * (read_committed, group `<prefix>tally-dlq-sink`) → ClickHouse `dead_letters`, so billing exports
 * and dashboards can count dead letters by reason, advertiser and event time.
 *
 * The batch-sink loop (batch-sink.ts), as the counts sink runs it: a batch is inserted, and only
 * after ClickHouse acknowledged it are its offsets committed; backoff while polling; a rebalance
 * voids the batch. Dead letters are few and their latency matters more than batch size: every
 * consume call that returns records is a batch. A record re-read after a crash inserts the same
 * row again, which `dead_letters` stores once (dead-letter-rows.ts).
 */
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { BatchSink } from './batch-sink.js';
import type { SinkOptions } from './batch-target.js';
import { DeadLetterBatch } from './dead-letter-rows.js';
import { SinkService } from './sink-service.js';

/** Most dead letters in one batch (one consume call). */
const MAX_BATCH_ROWS = 5_000;

/** The consumer group of the dead-letter sink: the configured topic prefix + tally-dlq-sink. */
export function deadLetterGroup(config: TallyConfig): string {
  const suffix = 'tally-clickhouse-sink';
  const prefix = config.groups.sink.endsWith(suffix) ? config.groups.sink.slice(0, -suffix.length) : '';
  return `${prefix}tally-dlq-sink`;
}

export type DeadLetterSinkOptions = SinkOptions;

export class DeadLetterSink extends SinkService {
  protected readonly loop: BatchSink;

  constructor(config: TallyConfig, log: Logger, opts: DeadLetterSinkOptions = {}) {
    super();
    const batch = new DeadLetterBatch();
    this.loop = new BatchSink(config, {
      ...opts,
      events: 'dlq_sink',
      name: 'tally-dlq-sink',
      topic: config.topics.dlq,
      group: deadLetterGroup(config),
      batchRows: MAX_BATCH_ROWS,
      batchMs: 0,
      describe: { table: `${config.clickhouse.database}.dead_letters` },
    }, { batch, add: (m, now) => batch.add(m, now) }, log);
  }
}
