/**
 * One client over the replicas of a ClickHouse cluster: each request goes to the replica that
 * answered last, and moves on to the next when that one cannot be reached (connection refused or
 * reset, timeout) or answers that it cannot serve (read-only: it lost ZooKeeper). Every other
 * answer, including a server error, is the answer: a query that fails on one replica would fail
 * on the other too.
 *
 * Retrying a request elsewhere is safe because every tally write is idempotent (rows are
 * versioned and keyed by their dedup id; a Replicated table also drops a block it already has);
 * an insert streaming its values cannot be replayed, so only inserts of arrays move.
 */
import type { ClickHouseClient as RawClient, PingResult } from '@clickhouse/client';
import { clickHouseErrorCode } from './server-error.js';

/** What tally asks of ClickHouse: one server's client, or the failover over several. */
export type ClickHouseClient = Pick<RawClient, 'query' | 'insert' | 'command' | 'exec' | 'ping' | 'close'>;

/** TABLE_IS_READ_ONLY (the replica lost its ZooKeeper session), ALL_CONNECTION_TRIES_FAILED, NO_ZOOKEEPER. */
const REPLICA_CANNOT_SERVE = new Set(['242', '279', '225']);

/** True when `err` says this replica, not the request, is the problem. */
export function isReplicaUnavailable(err: unknown): boolean {
  const code = clickHouseErrorCode(err);
  if (code !== undefined) return REPLICA_CANNOT_SERVE.has(code);
  if (!(err instanceof Error)) return false;
  const sys = (err as { code?: unknown }).code;
  return (typeof sys === 'string' && /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|UND_ERR_SOCKET)$/.test(sys))
    || /timeout|socket hang up|ECONNREFUSED|ECONNRESET/i.test(err.message);
}

export class ReplicaFailover implements ClickHouseClient {
  /** The replica that answered last: where the next request goes first. */
  private current = 0;

  constructor(private readonly replicas: RawClient[], private readonly onFailover: (from: number, to: number, err: unknown) => void = () => undefined) {
    if (replicas.length === 0) throw new Error('ReplicaFailover needs at least one replica');
  }

  /** Index of the replica requests go to first (for tests and logs). */
  get preferred(): number {
    return this.current;
  }

  query = ((params) => this.attempt((c) => c.query(params))) as RawClient['query'];
  command: RawClient['command'] = (params) => this.attempt((c) => c.command(params));
  exec: RawClient['exec'] = (params) => ('values' in params ? this.replicas[this.current].exec(params) : this.attempt((c) => c.exec(params)));
  insert = ((params) => (Array.isArray(params.values) ? this.attempt((c) => c.insert(params)) : this.replicas[this.current].insert(params))) as RawClient['insert'];

  /** Success when any replica answers. */
  async ping(): Promise<PingResult> {
    let last: PingResult = { success: false, error: new Error('no replica') };
    for (const i of this.order()) {
      last = await this.replicas[i].ping();
      if (last.success) return last;
    }
    return last;
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((c) => c.close()));
  }

  private async attempt<T>(send: (client: RawClient) => Promise<T>): Promise<T> {
    let lastErr: unknown;
    for (const i of this.order()) {
      try {
        const result = await send(this.replicas[i]);
        if (i !== this.current) {
          this.onFailover(this.current, i, lastErr);
          this.current = i;
        }
        return result;
      } catch (err) {
        if (!isReplicaUnavailable(err)) throw err;
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** Every replica once, starting at the current one. */
  private order(): number[] {
    return this.replicas.map((_, k) => (this.current + k) % this.replicas.length);
  }
}
