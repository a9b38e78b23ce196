import { ClickHouseLogLevel, createClient, type ClickHouseClient, type ErrorLogParams, type LogParams, type WarnLogParams } from '@clickhouse/client';
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';

export interface ClickHouseClientOptions {
  requestTimeoutMs?: number;
  /** Sent as the HTTP user agent's application name (shows in system.query_log). */
  application?: string;
  /**
   * For a role that reports ClickHouse failures itself: a Logger routes the client's own logging
   * through pino (its per-request error lines, printed to the console by default, become debug
   * lines); 'off' silences it.
   */
  log?: Logger | 'off';
}

/** One ClickHouse HTTP client for a role. Queries name the database explicitly. */
export function createClickHouse(config: TallyConfig, opts: ClickHouseClientOptions = {}): ClickHouseClient {
  return createClient({
    url: config.clickhouse.url,
    username: config.clickhouse.user,
    password: config.clickhouse.password,
    request_timeout: opts.requestTimeoutMs ?? 30_000,
    application: opts.application ?? 'tally',
    // 64-bit integers as JSON strings, as 18.16 sends them by default: since 25.8 ClickHouse sends
    // numbers, which JSON.parse rounds above 2^53 (spend sums). The only setting sent: 18.16
    // rejects those it does not know.
    clickhouse_settings: { output_format_json_quote_64bit_integers: 1 },
    compression: { request: false, response: false },
    ...(opts.log === 'off' ? { log: { level: ClickHouseLogLevel.OFF } } : {}),
    ...(opts.log && opts.log !== 'off' ? { log: { LoggerClass: pinoBridge(opts.log), level: ClickHouseLogLevel.WARN } } : {}),
  });
}

function pinoBridge(log: Logger) {
  const child = log.child({ component: 'clickhouse-client' });
  return class PinoBridge {
    trace(): void { /* never enabled */ }
    debug(p: LogParams): void { child.debug({ module: p.module, args: p.args }, p.message); }
    info(p: LogParams): void { child.debug({ module: p.module, args: p.args }, p.message); }
    warn(p: WarnLogParams): void { child.warn({ module: p.module, args: p.args, err: p.err?.message }, p.message); }
    error(p: ErrorLogParams): void { child.debug({ module: p.module, args: p.args, err: p.err.message }, p.message); }
  };
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
