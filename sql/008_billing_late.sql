-- 008: events refused as too_late, reported in the period in which they arrived (the period the
-- partition's watermark was in), never in their own closed period: per (arrival period, advertiser,
-- original period, source partition) the count. Written from the close of the arrival period, so
-- immutable like the ledger (read with GROUP BY … any()). Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.billing_late
(
    arrival_period DateTime,
    advertiser_id String,
    original_period DateTime,
    source_partition UInt16,
    events UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (advertiser_id, arrival_period, original_period, source_partition)
