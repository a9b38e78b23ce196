-- 003: each input partition's watermark as last committed by the aggregator (event time, ms).
-- A period is closed when every partition's watermark has passed its end plus the allowed lateness.
-- version = watermark, which never decreases, so FINAL gives the newest.
CREATE TABLE IF NOT EXISTS {database}.partition_watermarks
(
    source_partition UInt16,
    watermark_ms Int64,
    max_event_time_ms Int64,
    updated_at DateTime,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY source_partition
