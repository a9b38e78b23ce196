/**
 * The sinks of `tally sink` (impression-counts and impressions-dlq → ClickHouse), both run by the
 * one batch-sink loop (batch-sink.ts), and the pure rows they insert.
 */
export { ClickHouseSink, type ClickHouseSinkOptions } from './clickhouse-sink.js';
export { SinkMetrics } from './sink-metrics.js';
export {
  RowBatch, IMPRESSION_COUNT_COLUMNS, PARTITION_WATERMARK_COLUMNS,
  type AddOutcome, type ImpressionCountRow, type PartitionWatermarkRow,
} from './row-batch.js';
export { DeadLetterSink, deadLetterGroup, type DeadLetterSinkOptions } from './dead-letter-sink.js';
export {
  DEAD_LETTER_COLUMNS, deadLetterSubject, toDeadLetterRow, type DeadLetterRow, type DeadLetterRecord,
} from './dead-letter-rows.js';
