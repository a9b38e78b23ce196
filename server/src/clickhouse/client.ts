import { createClient, type ClickHouseClient } from '@clickhouse/client';
import type { TallyConfig } from '../config/index.js';

/** One ClickHouse HTTP client for a role. Queries name the database explicitly. */
export function createClickHouse(config: TallyConfig, opts: { requestTimeoutMs?: number } = {}): ClickHouseClient {
  return createClient({
    url: config.clickhouse.url,
    username: config.clickhouse.user,
    password: config.clickhouse.password,
    request_timeout: opts.requestTimeoutMs ?? 30_000,
    application: 'tally',
    // 18.16 rejects settings it does not know; send none by default.
    clickhouse_settings: {},
    compression: { request: false, response: false },
  });
}

/** Rows of a SELECT as objects (JSONEachRow). */
export async function queryRows<T>(ch: ClickHouseClient, sql: string): Promise<T[]> {
  const rs = await ch.query({ query: sql, format: 'JSONEachRow' });
  return rs.json<T>();
}

/** The server's version as [major, minor], to gate newer SQL features. */
export async function serverVersion(ch: ClickHouseClient): Promise<[number, number]> {
  const rows = await queryRows<{ v: string }>(ch, 'SELECT version() AS v');
  const [major, minor] = rows[0].v.split('.').map(Number);
  return [major, minor];
}
