-- 009: every `tally reconcile` run: the range it checked, how many final periods and ledger rows it
-- recomputed from the raw impressions topic, and how many differed (0: the ledger is exact).
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.reconciliations
(
    ran_at DateTime,
    from_time DateTime,
    to_time DateTime,
    periods UInt32,
    ledger_rows UInt32,
    differences UInt32,
    detail String
)
ENGINE = MergeTree
ORDER BY ran_at
