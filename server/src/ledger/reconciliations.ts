/**
 * The last `tally reconcile` run (written by server/src/tools/reconcile.ts), as the pipeline page
 * shows it: when it ran, what range it checked and whether the ledger matched Kafka.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { identifier, queryRows } from '../clickhouse/index.js';
import type { ReconciliationRun } from '../contracts/ledger-status.js';

type Num = string | number;

export function lastReconciliationSql(database: string): string {
  return 'SELECT toUInt32(ran_at) AS ran, toUInt32(from_time) AS f, toUInt32(to_time) AS t, periods, ledger_rows, differences, detail '
    + `FROM ${identifier(database)}.reconciliations ORDER BY ran_at DESC LIMIT 1`;
}

export async function queryLastReconciliation(ch: ClickHouseClient, database: string): Promise<ReconciliationRun | null> {
  const [r] = await queryRows<{ ran: Num; f: Num; t: Num; periods: Num; ledger_rows: Num; differences: Num; detail: string }>(ch, lastReconciliationSql(database));
  if (r === undefined) return null;
  return {
    ranAt: Number(r.ran) * 1000, from: Number(r.f) * 1000, to: Number(r.t) * 1000,
    periods: Number(r.periods), ledgerRows: Number(r.ledger_rows), differences: Number(r.differences), detail: r.detail,
  };
}
