-- 005: the dead-letter topic (impressions-dlq) in ClickHouse, written by the dead-letter sink that
-- `tally sink` runs next to the counts sink. One row per dead letter, keyed by where the event was
-- read on the input topic (the record's source-topic/-partition/-offset headers); a replay of the
-- DLQ after a crash inserts the same key again and ReplacingMergeTree keeps one, so read with FINAL.
-- reason leads the key (it is a function of the record, so the identity is still the source
-- coordinates) to make per-reason counts cheap. advertiser_id is '' and event_ts 0 when the value
-- does not carry a valid one. Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.dead_letters
(
    reason String,
    detail String,
    source_topic String,
    source_partition UInt16,
    source_offset UInt64,
    dlq_partition UInt16,
    dlq_offset UInt64,
    advertiser_id String,
    event_ts DateTime,
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
ORDER BY (reason, source_topic, source_partition, source_offset)
