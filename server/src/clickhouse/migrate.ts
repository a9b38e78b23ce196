import fs from 'node:fs';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { repoRoot } from '../config/index.js';
import { identifier, stringLiteral, uintLiteral } from './sql-literal.js';
import { queryRows } from './client.js';
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

/** The statement with {database} filled in and the header comment dropped. */
export function renderMigration(m: Migration, database: string): string {
  return m.sql.split('\n').filter((l) => !l.startsWith('--')).join('\n').replaceAll('{database}', identifier(database)).trim();
}

/**
 * Applies the migrations not yet recorded in {database}.schema_migrations (idempotent: each
 * statement is IF NOT EXISTS as well, so a crash between apply and record is harmless; 18.16 has no
 * ADD COLUMN IF NOT EXISTS, so an ADD COLUMN finding its column there counts as applied).
 * Returns the names applied.
 */
export async function migrate(ch: ClickHouseClient, database: string): Promise<string[]> {
  const db = identifier(database);
  await ch.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  await ch.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version`,
  });
  const done = new Set((await queryRows<{ version: number }>(ch, `SELECT version FROM ${db}.schema_migrations`)).map((r) => Number(r.version)));
  const applied: string[] = [];
  for (const m of loadMigrations()) {
    if (done.has(m.version)) continue;
    const statement = renderMigration(m, db);
    try {
      await ch.command({ query: statement });
    } catch (err) {
      if (!(ADD_COLUMN.test(statement) && COLUMN_EXISTS.has(clickHouseErrorCode(err) ?? ''))) throw err;
    }
    await ch.command({ query: `INSERT INTO ${db}.schema_migrations (version, name) VALUES (${uintLiteral(m.version)}, ${stringLiteral(m.name)})` });
    applied.push(m.name);
  }
  return applied;
}
