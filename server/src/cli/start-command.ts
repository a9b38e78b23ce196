import { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { stackUp } from '../stack/index.js';
import { migrateCommandAction } from './migrate-command.js';

export function startCommand(): Command {
  return new Command('start')
    .description('bring up the local stack, apply migrations, and run the service with demo traffic (Ctrl-C stops the service; `tally stack down` stops the servers)')
    .action(async () => {
      const config = loadConfig();
      await stackUp(config, (m) => process.stdout.write(`tally stack: ${m}\n`));
      await migrateCommandAction();
      process.stdout.write('tally: ready\n');
    });
}
