-- 006: the billing ledger: one row per (UTC hour, advertiser, campaign, source partition), written by
-- the sink from the aggregator's period-close records, once the period can no longer change in that
-- partition. Immutable: a close is written once in Kafka; a re-insert after a sink crash carries the
-- same values, so readers collapse identical rows with GROUP BY … any() and need no FINAL (the engine
-- also drops them at merges). A period is final when every partition closed it (see period_closes).
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.billing_ledger
(
    period_start DateTime,
    advertiser_id String,
    campaign_id String,
    source_partition UInt16,
    impressions UInt64,
    spend_micros UInt64,
    duplicates UInt64,
    closed_at DateTime
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(period_start)
ORDER BY (advertiser_id, period_start, campaign_id, source_partition)
