-- 011: one row per completed roll-up of a final period (UTC hour) into billing_statement: when the
-- sink saw it final (every partition closed it), which rollup_id holds its rows and how many there
-- are. Periods are rolled up in order, so every period before the latest here is in
-- billing_statement. A period rolled twice has two rows; readers use the lowest rollup_id.
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.final_periods
(
    period_start DateTime,
    final_at DateTime,
    statement_rows UInt32,
    rollup_id UInt64
)
ENGINE = MergeTree
ORDER BY (period_start, rollup_id)
