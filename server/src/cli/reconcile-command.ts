import { Command } from 'commander';
import { parseExportTime } from '../billing/index.js';
import { createClickHouse } from '../clickhouse/index.js';
import { loadConfig } from '../config/index.js';
import { InvalidArgumentError } from '../errors/index.js';
import { formatDifference, reconcile, recordReconciliation } from '../tools/index.js';

interface ReconcileFlags {
  from: string;
  to: string;
  json?: boolean;
}

function hourArg(flag: string, v: string): number {
  const t = parseExportTime(v);
  if (t === undefined) throw new InvalidArgumentError(`--${flag}: ${JSON.stringify(v)} is not a date (YYYY-MM-DD), an ISO-8601 time with a zone or epoch ms`);
  if (t % 3_600_000 !== 0) throw new InvalidArgumentError(`--${flag}: ${v} is not a whole UTC hour`);
  return t;
}

export function reconcileCommand(): Command {
  return new Command('reconcile')
    .description('recompute the final billing periods of a range from the raw Kafka records (impressions, aggregator-repartition, impressions-dlq) with separate, simple code, and compare with the ledger row by row; exit code 1 on any difference')
    .requiredOption('--from <time>', 'start: YYYY-MM-DD, an ISO-8601 time with a zone, or epoch ms (a whole UTC hour)')
    .requiredOption('--to <time>', 'end (exclusive), as --from')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Only final periods are compared (closed in every partition); the rest of the range is reported as not
final yet. Records must still be in Kafka (retention): the run reads every partition of the input up
to the aggregator's committed offsets, and the dead-letter topic whole. Each run is recorded in
ClickHouse (tally.reconciliations); the dashboard's pipeline page shows the last one.`)
    .action(async (flags: ReconcileFlags) => {
      const from = hourArg('from', flags.from);
      const to = hourArg('to', flags.to);
      if (to <= from) throw new InvalidArgumentError('--to must be after --from');
      const config = loadConfig();
      const ch = createClickHouse(config);
      try {
        const started = Date.now();
        const r = await reconcile(config, ch, from, to);
        await recordReconciliation(ch, config.clickhouse.database, r, started);
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
        } else {
          const span = `${new Date(r.from).toISOString()} – ${new Date(r.to).toISOString()}`;
          process.stdout.write(`tally reconcile: ${r.periods} final hour(s) ${span}, ${r.ledgerRows} ledger rows, ${r.recordsRead} Kafka records read in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
          if (r.to < to) process.stdout.write(`  not final yet (not compared): ${new Date(r.to).toISOString()} – ${new Date(to).toISOString()}\n`);
          for (const d of r.differences) process.stdout.write(`  DIFFERENT ${formatDifference(d)}\n`);
          process.stdout.write(r.ok ? 'OK: the ledger equals the recomputation\n' : `MISMATCH: ${r.differences.length} row(s) differ\n`);
        }
        if (!r.ok) process.exitCode = 1;
      } finally {
        await ch.close();
      }
    });
}
