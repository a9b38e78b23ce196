-- 010: the ledger summed over partitions, one row per (UTC hour, advertiser, campaign): what
-- statements and hourly/daily counts read for final periods (a month of 1000 campaigns is 720k rows
-- here, 8× that in billing_ledger). Written by the sink once a period is final everywhere (INSERT …
-- SELECT from billing_ledger), then a row in final_periods says the period is in. Immutable like the
-- ledger: a repeated roll-up inserts identical rows, collapsed by readers (LIMIT 1 BY / any()).
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.billing_statement
(
    period_start DateTime,
    advertiser_id String,
    campaign_id String,
    impressions UInt64,
    spend_micros UInt64,
    duplicates UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(period_start)
ORDER BY (advertiser_id, period_start, campaign_id)
