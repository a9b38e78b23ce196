import { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { stackUp } from '../stack/index.js';
import { RoleSupervisor } from '../stack/role-supervisor.js';
import { migrateCommandAction } from './migrate-command.js';

export function startCommand(): Command {
  return new Command('start')
    .description('bring up the local stack, apply migrations, run the aggregator and sink, and feed them demo traffic; Ctrl-C stops the service (`tally stack down` stops the servers)')
    .option('--no-demo', 'no demo traffic')
    .option('--demo-rate <n>', 'demo impressions per second', '50')
    .action(async (opts: { demo: boolean; demoRate: string }) => {
      const say = (line: string) => process.stdout.write(`${line}\n`);
      const config = loadConfig();
      await stackUp(config, (m) => say(`tally stack: ${m}`));
      await migrateCommandAction();
      const supervisor = new RoleSupervisor(say);
      supervisor.start({ name: 'aggregator', args: ['aggregator'], env: { TALLY_INSTANCE_ID: 'local-1' } });
      supervisor.start({ name: 'sink', args: ['sink'] });
      if (opts.demo) {
        // One minute of traffic at a time, again and again: duplicates, late and malformed events included.
        supervisor.start({ name: 'demo', repeat: true, args: ['generate', '--rate', opts.demoRate, '--duration', '60', '--id-prefix', 'demo-', '--duplicates', '0.05', '--quiet'] });
      }
      say(`tally: ready — Kafka ${config.kafka.brokers}, ClickHouse ${config.clickhouse.url} (database ${config.clickhouse.database}); Ctrl-C to stop`);
      await new Promise<void>((resolve) => {
        const stop = () => void supervisor.stop().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      say('tally: stopped (the stack keeps running; `npm run stack -- down` stops it)');
    });
}
