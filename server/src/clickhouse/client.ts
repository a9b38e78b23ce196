import { ClickHouseLogLevel, createClient, type ClickHouseClient as RawClient, type ClickHouseSettings, type ErrorLogParams, type LogParams, type WarnLogParams } from '@clickhouse/client';
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { ReplicaFailover, type ClickHouseClient } from './replica-failover.js';

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

/**
 * One ClickHouse client for a role. Queries name the database explicitly. With several servers
 * (a cluster) it fails over between them (see ReplicaFailover) and every insert waits for the
 * configured quorum of replicas.
 */
export function createClickHouse(config: TallyConfig, opts: ClickHouseClientOptions = {}): ClickHouseClient {
  const replicas = replicaClients(config, opts);
  if (replicas.length === 1) return replicas[0];
  const child = opts.log !== undefined && opts.log !== 'off' ? opts.log.child({ component: 'clickhouse-failover' }) : undefined;
  const { urls } = config.clickhouse;
  return new ReplicaFailover(replicas, (from, to, err) => child?.warn({ from: urls[from], to: urls[to], err: err instanceof Error ? err.message : String(err) }, 'clickhouse.replica_failover'));
}

/** A client per server of CLICKHOUSE_URL (or of the local stack), in order: what must happen on every replica (migrations) goes through these. */
export function replicaClients(config: TallyConfig, opts: ClickHouseClientOptions = {}): RawClient[] {
  const { urls, user, password, insertQuorum } = config.clickhouse;
  // 64-bit integers as JSON strings, as 18.16 sends them by default: since 25.8 ClickHouse sends
  // numbers, which JSON.parse rounds above 2^53 (spend sums). Only settings 18.16 knows are sent:
  // it rejects the others.
  const settings: ClickHouseSettings = { output_format_json_quote_64bit_integers: 1 };
  if (insertQuorum > 1) {
    settings.insert_quorum = String(insertQuorum);
    // A replica gone mid-insert fails the insert within this (the sink retries) instead of the default 10 min.
    settings.insert_quorum_timeout = INSERT_QUORUM_TIMEOUT_MS;
  }
  return urls.map((url) => createClient({
    url,
    username: user,
    password,
    request_timeout: opts.requestTimeoutMs ?? 30_000,
    application: opts.application ?? 'tally',
    clickhouse_settings: settings,
    compression: { request: false, response: false },
    ...(opts.log === 'off' ? { log: { level: ClickHouseLogLevel.OFF } } : {}),
    ...(opts.log && opts.log !== 'off' ? { log: { LoggerClass: pinoBridge(opts.log), level: ClickHouseLogLevel.WARN } } : {}),
  }));
}

/** How long an insert waits for its quorum of replicas before it fails. */
export const INSERT_QUORUM_TIMEOUT_MS = 10_000;

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
