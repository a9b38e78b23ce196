export { ClickHouseSink, type ClickHouseSinkOptions } from './clickhouse-sink.js';
export { SinkMetrics } from './sink-metrics.js';
export {
  RowBatch, IMPRESSION_COUNT_COLUMNS, PARTITION_WATERMARK_COLUMNS,
  type AddOutcome, type ImpressionCountRow, type PartitionWatermarkRow,
} from './row-batch.js';
export {
  DeadLetterSink, DEAD_LETTER_COLUMNS, deadLetterGroup, deadLetterSubject, toDeadLetterRow,
  type DeadLetterSinkOptions, type DeadLetterRow, type DeadLetterRecord,
} from './dead-letter-sink.js';
