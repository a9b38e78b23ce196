import { Command } from 'commander';
import { migrateServers } from '../clickhouse/index.js';
import { loadConfig } from '../config/index.js';

export async function migrateCommandAction(): Promise<void> {
  const config = loadConfig();
  const applied = await migrateServers(config);
  process.stdout.write(applied.length ? `tally migrate: applied ${applied.join(', ')}\n` : 'tally migrate: schema up to date\n');
}

export function migrateCommand(): Command {
  return new Command('migrate')
    .description('apply the ClickHouse migrations in sql/ that are not yet recorded (idempotent), on every server of CLICKHOUSE_URL; with TALLY_CLICKHOUSE_CLUSTER as Replicated tables')
    .action(migrateCommandAction);
}
