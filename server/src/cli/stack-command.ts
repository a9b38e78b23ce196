import { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { stackDown, stackLogs, stackStatus, stackUp } from '../stack/index.js';
import { migrateCommandAction } from './migrate-command.js';

const say = (msg: string) => process.stdout.write(`tally stack: ${msg}\n`);

export function stackCommand(): Command {
  const cmd = new Command('stack').description('the local Kafka broker and ClickHouse server (no Docker)');
  cmd.command('up')
    .description('start Kafka and ClickHouse (idempotent), create topics, apply migrations; returns when both answer')
    .option('--no-migrate', 'skip the ClickHouse migrations')
    .option('--brokers <n>', 'Kafka nodes, 1 or 3 (sets TALLY_KAFKA_NODES for this command)')
    .option('--clickhouse-replicas <n>', 'ClickHouse servers, 1 or 2 replicas with a ZooKeeper (sets TALLY_CLICKHOUSE_REPLICAS for this command)')
    .action(async (opts: { migrate: boolean; brokers?: string; clickhouseReplicas?: string }) => {
      if (opts.brokers !== undefined) process.env.TALLY_KAFKA_NODES = opts.brokers;
      if (opts.clickhouseReplicas !== undefined) process.env.TALLY_CLICKHOUSE_REPLICAS = opts.clickhouseReplicas;
      const config = loadConfig();
      await stackUp(config, say);
      if (opts.migrate) await migrateCommandAction();
    });
  cmd.command('down').description('stop the local servers cleanly (data is kept in TALLY_STACK_DIR)')
    .action(async () => stackDown(loadConfig(), say));
  cmd.command('status').description('what runs where').option('--json', 'machine-readable')
    .action(async (opts: { json?: boolean }) => {
      const s = await stackStatus(loadConfig());
      if (opts.json) return void process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      const line = (name: string, where: string, ext: boolean, up: boolean, pids: number[]) =>
        `${name.padEnd(11)} ${up ? 'up  ' : 'DOWN'}  ${where}${ext ? '  (external)' : pids.length > 0 ? `  pid ${pids.join(', ')}` : ''}`;
      process.stdout.write(`${line('kafka', s.kafka.brokers, s.kafka.external, s.kafka.up, s.kafka.pids)}\n`);
      process.stdout.write(`${line('clickhouse', s.clickhouse.urls.join(','), s.clickhouse.external, s.clickhouse.up, s.clickhouse.pids)}\n`);
      if (s.zookeeper) process.stdout.write(`${line('zookeeper', s.zookeeper.address, false, s.zookeeper.up, s.zookeeper.pid === undefined ? [] : [s.zookeeper.pid])}\n`);
      if (!s.kafka.up || !s.clickhouse.up || s.zookeeper?.up === false) process.exitCode = 1;
    });
  cmd.command('logs').description('the last lines of the servers\' logs').option('-n, --lines <n>', 'lines per log', '40')
    .action((opts: { lines: string }) => void process.stdout.write(`${stackLogs(loadConfig(), Number(opts.lines))}\n`));
  return cmd;
}
