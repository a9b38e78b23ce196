-- 004: API bearer tokens (`tally tokens create|list|revoke`). Only the SHA-256 of a token's secret
-- is stored (64 hex digits); the plaintext token exists once, when it is created. Revoking inserts
-- the row again with revoked = 1 and a higher version; ReplacingMergeTree(version) keeps the
-- newest, read with FINAL. scopes: admin | ingest | advertiser:<advertiser id>.
-- Runs on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS {database}.api_tokens
(
    token_id String,
    name String,
    secret_sha256 String,
    scopes Array(String),
    created_at DateTime,
    revoked UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY token_id
