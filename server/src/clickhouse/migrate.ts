import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, type TallyConfig } from '../config/index.js';
import type { ClickHouseClient } from './replica-failover.js';
import { identifier, stringLiteral, uintLiteral } from './sql-literal.js';
import { queryRows, replicaClients } from './client.js';
import { clickHouseErrorCode } from './server-error.js';

/** What ADD COLUMN answers when the column is there already: ILLEGAL_COLUMN on 18.16, DUPLICATE_COLUMN since. */
const COLUMN_EXISTS = new Set(['44', '15']);
const ADD_COLUMN = /^ALTER TABLE \S+ ADD COLUMN /i;

export const sqlDir = path.join(repoRoot, 'sql');

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The numbered files in sql/ (NNN_name.sql), in order. */
export function loadMigrations(dir = sqlDir): Migration[] {
  return fs.readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 3)), name: f.replace(/\.sql$/, ''), sql: fs.readFileSync(path.join(dir, f), 'utf8') }));
}

/** `ENGINE = ReplacingMergeTree(version)` and the like: the engine and its arguments. */
const MERGE_TREE_ENGINE = /ENGINE = (\w*)MergeTree(?:\(([^)]*)\))?/;
const CREATED_TABLE = /CREATE TABLE IF NOT EXISTS \S+\.(\w+)/;

/**
 * The statement with {database} filled in and the header comment dropped. With a cluster, a table's
 * engine becomes its Replicated twin at /clickhouse/tables/<cluster>/<database>/<table> in
 * ZooKeeper, the replica named by the server's {replica} macro.
 */
export function renderMigration(m: Migration, database: string, cluster?: string): string {
  const sql = m.sql.split('\n').filter((l) => !l.startsWith('--')).join('\n').replaceAll('{database}', identifier(database)).trim();
  const table = CREATED_TABLE.exec(sql)?.[1];
  if (cluster === undefined || table === undefined) return sql;
  return sql.replace(MERGE_TREE_ENGINE, (_, kind: string, args: string | undefined) => {
    const zkPath = stringLiteral(`/clickhouse/tables/${cluster}/${identifier(database)}/${table}`);
    return `ENGINE = Replicated${kind}MergeTree(${[zkPath, "'{replica}'", ...(args ? [args] : [])].join(', ')})`;
  });
}

/**
 * Applies the migrations not yet recorded in {database}.schema_migrations (idempotent: each
 * statement is IF NOT EXISTS as well, so a crash between apply and record is harmless; 18.16 has no
 * ADD COLUMN IF NOT EXISTS, so an ADD COLUMN finding its column there counts as applied).
 *
 * On a cluster every replica gets each migration before any gets the next, so a replica creates a
 * table with the columns the others' copy had when it was created; an ALTER of a Replicated table
 * reaches the others through ZooKeeper and, run on them too, finds its column there. Each replica
 * records what it ran in its own (not replicated) schema_migrations. Returns the names applied
 * anywhere.
 */
export async function migrate(replicas: ClickHouseClient[], database: string, cluster?: string): Promise<string[]> {
  const db = identifier(database);
  const done: Array<Set<number>> = [];
  for (const ch of replicas) {
    await ch.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
    await ch.command({
      query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version`,
    });
    done.push(new Set((await queryRows<{ version: number }>(ch, `SELECT version FROM ${db}.schema_migrations`)).map((r) => Number(r.version))));
  }
  const applied = new Set<string>();
  for (const m of loadMigrations()) {
    const statement = renderMigration(m, database, cluster);
    for (const [i, ch] of replicas.entries()) {
      if (done[i].has(m.version)) continue;
      try {
        await ch.command({ query: statement });
      } catch (err) {
        if (!(ADD_COLUMN.test(statement) && COLUMN_EXISTS.has(clickHouseErrorCode(err) ?? ''))) throw err;
      }
      await ch.command({ query: `INSERT INTO ${db}.schema_migrations (version, name) VALUES (${uintLiteral(m.version)}, ${stringLiteral(m.name)})` });
      applied.add(m.name);
    }
  }
  return [...applied];
}

/** migrate() on every server of the configuration (all must answer). */
export async function migrateServers(config: TallyConfig): Promise<string[]> {
  // An ADD COLUMN finding its column is expected here: the client is not to print it as an error.
  const replicas = replicaClients(config, { log: 'off' });
  try {
    return await migrate(replicas, config.clickhouse.database, config.clickhouse.cluster);
  } finally {
    await Promise.all(replicas.map((c) => c.close()));
  }
}

/** Drops the database on every server (a test's sandbox; on a cluster this also removes its replicas from ZooKeeper). */
export async function dropDatabase(config: TallyConfig): Promise<void> {
  const replicas = replicaClients(config, { log: 'off' });
  await Promise.all(replicas.map(async (c) => {
    await c.command({ query: `DROP DATABASE IF EXISTS ${identifier(config.clickhouse.database)}` }).catch(() => undefined);
    await c.close();
  }));
}
