-- 001: the database. {database} is replaced by TALLY_CLICKHOUSE_DATABASE (validated identifier).
CREATE DATABASE IF NOT EXISTS {database}
