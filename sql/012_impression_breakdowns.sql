-- 012: window counts by dimension, one row per (window_start, advertiser_id, campaign_id,
-- source_partition, dimension, value). Written by the sink from the `breakdowns` of impression-counts
-- window records: every version of a window row carries all its values, so each value is re-inserted
-- with the row's version and ReplacingMergeTree(version) keeps the newest, like impression_counts.
-- A dimension's values of a row sum to that impression_counts row. Read with FINAL.
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.impression_breakdowns
(
    window_start DateTime,
    window_end DateTime,
    advertiser_id String,
    campaign_id String,
    source_partition UInt16,
    dimension String,
    value String,
    impressions UInt64,
    spend_micros UInt64,
    version UInt64,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (advertiser_id, campaign_id, dimension, window_start, value, source_partition)
