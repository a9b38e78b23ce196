-- 007: one row per (UTC hour, source partition) that closed it, with its lineage: for each of the
-- partition's two inputs (impressions and aggregator-repartition) the first offset that contributed
-- (-1: none) and the offset the closing transaction committed; ledger_rows says how many ledger rows
-- the close wrote. The sink inserts it after the close's ledger rows, so a close row means its rows
-- are in. A period is final once every partition has a close row for it or for a later period (a
-- partition whose first close is later held nothing of it). Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.period_closes
(
    period_start DateTime,
    source_partition UInt16,
    closed_at DateTime,
    watermark_ms Int64,
    ledger_rows UInt32,
    source_topic String,
    source_first_offset Int64,
    source_close_offset Int64,
    repartition_topic String,
    repartition_first_offset Int64,
    repartition_close_offset Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (period_start, source_partition)
