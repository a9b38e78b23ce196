import { Command } from 'commander';
import { createClickHouse, migrate } from '../clickhouse/index.js';
import { loadConfig } from '../config/index.js';

export async function migrateCommandAction(): Promise<void> {
  const config = loadConfig();
  const ch = createClickHouse(config);
  try {
    const applied = await migrate(ch, config.clickhouse.database);
    process.stdout.write(applied.length ? `tally migrate: applied ${applied.join(', ')}\n` : 'tally migrate: schema up to date\n');
  } finally {
    await ch.close();
  }
}

export function migrateCommand(): Command {
  return new Command('migrate')
    .description(`apply the ClickHouse migrations in sql/ that are not yet recorded (idempotent)`)
    .action(migrateCommandAction);
}
