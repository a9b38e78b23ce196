-- 002: window counts, one row per (window_start, advertiser_id, campaign_id, source_partition).
-- Written by the sink from impression-counts. A row is re-inserted with a higher version each time
-- the aggregator changes it; ReplacingMergeTree(version) keeps the highest, so re-inserts after a
-- crash are harmless. Read exact totals with FINAL (or argMax(…, version)).
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.impression_counts
(
    window_start DateTime,
    window_end DateTime,
    advertiser_id String,
    campaign_id String,
    source_partition UInt16,
    impressions UInt64,
    spend_micros UInt64,
    duplicates UInt64,
    version UInt64,
    final UInt8,
    revised UInt8,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (advertiser_id, campaign_id, window_start, source_partition)
