-- 011: one row per final period (UTC hour) once its rows are in billing_statement: when the sink saw
-- it final (every partition closed it) and how many statement rows it has. Periods are rolled up in
-- order, so "every period before the latest here" is in billing_statement.
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.final_periods
(
    period_start DateTime,
    final_at DateTime,
    statement_rows UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY period_start
