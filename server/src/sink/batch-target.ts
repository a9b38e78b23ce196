/**
 * What a sink hands the batch-sink loop (batch-sink.ts): its batch, how a record gets into it,
 * what it does around the loop's steps, and the loop's settings. The loop does the rest — consuming, rebalances,
 * inserting with backoff, committing — the same way for every sink.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import type Kafka from 'node-rdkafka';
import type { PartitionOffset } from './partition-offsets.js';
import type { SinkMetrics } from './sink-metrics.js';

/** The rows of one table, sent as JSONEachRow. */
export interface TableInsert {
  /** The table's name without the database (the loop adds it). */
  table: string;
  columns: [string, ...string[]];
  values: object[];
}

/** The open batch, as the loop sees it (RowBatch, DeadLetterBatch). */
export interface SinkBatch {
  /** No record since the last clear (a batch of tombstones only is not empty: it has offsets to commit). */
  readonly isEmpty: boolean;
  /** Records added since the last clear. */
  readonly records: number;
  /** Rows the batch will insert: the size bound. */
  readonly rowCount: number;
  /** Epoch ms of the first record, or undefined while empty: the time bound. */
  readonly firstRecordAt: number | undefined;
  /** Every non-empty table, in the order the rows must land. */
  inserts(): TableInsert[];
  /** Per partition the offset to commit once the batch is in ClickHouse: last offset added + 1. */
  offsets(): PartitionOffset[];
  clear(): void;
}

/** A sink's part in the loop. Hooks are called from the loop, never concurrently with it. */
export interface BatchTarget {
  readonly batch: SinkBatch;
  /** The consumer is connected and subscribed; the loop starts right after. */
  started?(): void;
  /** Puts a record of a partition the loop owns into the batch. */
  add(m: Kafka.Message, now: number): void;
  /** ClickHouse acknowledged the batch; called before it is cleared and its offsets committed. */
  inserted?(): void;
  /** Offsets committed (everything up to them is in ClickHouse). */
  committed?(offsets: PartitionOffset[]): void;
  /** The loop now owns `partitions` (sorted), read from their committed offsets. */
  assigned?(partitions: number[]): void;
  /** The loop owns no partition any more; the batch was voided. */
  revoked?(): void;
  /** After every turn of the loop (a consume call and whatever followed it). */
  polled?(): void;
  /** Awaited when the loop has ended, before the ClickHouse client closes: background work to finish. */
  drain?(): Promise<void>;
}

/** The loop's metrics (the counts sink's tally_sink_*); a sink without metrics passes none. */
export type BatchSinkMetrics = Pick<SinkMetrics,
  'rowsInserted' | 'batches' | 'insertSeconds' | 'insertFailures' | 'commitFailures' | 'waitingForClickHouse'
  | 'lastInsertTimestamp' | 'assigned' | 'rebalances'>;

/** What a caller of a sink may set (ClickHouseSink, DeadLetterSink). */
export interface SinkOptions {
  /** A client to use instead of one built from the config (not closed by the sink). */
  clickhouse?: ClickHouseClient;
  /**
   * After a stop request, how long a batch ClickHouse refuses is still retried before it is left
   * uncommitted (read again by the next owner).
   * @default 10_000
   */
  shutdownGraceMs?: number;
}

export interface BatchSinkOptions extends SinkOptions {
  /** Prefix of every log event: `sink`, `dlq_sink`. */
  events: string;
  /** The Kafka client id (with the instance id) and ClickHouse application name: `tally-sink`. */
  name: string;
  topic: string;
  group: string;
  /** A batch is inserted once it holds this many rows… */
  batchRows: number;
  /** …or its first record is this old (0: after every consume call that returned records). */
  batchMs: number;
  metrics?: BatchSinkMetrics;
  /** More fields of the `<events>.started` line. */
  describe?: Record<string, unknown>;
}
