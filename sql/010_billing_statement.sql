-- 010: the ledger summed over partitions, one row per (UTC hour, advertiser, campaign): what
-- statements and hourly/daily counts read for final periods (a month of 1000 campaigns is 720k rows
-- here, 8× that in billing_ledger). Written by the sink once a period is final everywhere (INSERT …
-- SELECT from billing_ledger) under a fresh rollup_id; then a row in final_periods names that
-- rollup. Readers take, per period, the lowest rollup_id listed in final_periods, so a roll-up cut
-- short by a crash (rows without a final_periods row) or repeated (two complete, identical sets) is
-- never counted twice, and no read has to collapse rows (no FINAL, no GROUP BY to deduplicate).
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.billing_statement
(
    period_start DateTime,
    advertiser_id String,
    campaign_id String,
    impressions UInt64,
    spend_micros UInt64,
    duplicates UInt64,
    rollup_id UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(period_start)
ORDER BY (advertiser_id, period_start, campaign_id)
