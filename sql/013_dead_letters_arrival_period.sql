-- 013: the billing period a dead letter is reported in (header arrival-period, too_late only): the UTC
-- hour its partition's watermark was in when the event was refused, the clock billing_late uses, so
-- provisional statements count late events of open periods by the same arrival period as final ones.
-- 0 for other reasons and for rows written before this column (readers fall back to inserted_at).
-- 18.16 has no ADD COLUMN IF NOT EXISTS: a re-run after the column is in fails with code 44
-- (ILLEGAL_COLUMN; 15 DUPLICATE_COLUMN on current releases), which `migrate` takes as applied.
-- Runs on ClickHouse 18.16 and current releases.
ALTER TABLE {database}.dead_letters ADD COLUMN arrival_period DateTime
