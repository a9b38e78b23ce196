import fs from 'node:fs';
import { Command, Option } from 'commander';
import { BillingParamError, parseExportParams, runExport, type ExportQuery } from '../billing/index.js';
import { createClickHouse } from '../clickhouse/index.js';
import { loadConfig } from '../config/index.js';
import { InvalidArgumentError } from '../errors/index.js';

interface ExportFlags {
  advertiser: string;
  from: string;
  to: string;
  granularity: string;
  format: string;
  breakdown?: string;
  out?: string;
  quiet?: boolean;
}

function exportCommand(): Command {
  return new Command('export')
    .description('write an advertiser\'s billing statement (per campaign and day/hour, exact integers, totals, status final|provisional, sha256 trailer) from ClickHouse, streamed')
    .requiredOption('--advertiser <id>', 'advertiser id (^[A-Za-z0-9._:-]{1,128}$)')
    .requiredOption('--from <time>', 'period start: YYYY-MM-DD, ISO-8601 with a zone, or epoch ms; aligned to the granularity')
    .requiredOption('--to <time>', 'period end (exclusive), same forms; at most 93 days after --from')
    .addOption(new Option('--granularity <g>', 'one row per campaign and').choices(['day', 'hour']).default('day'))
    .addOption(new Option('--format <f>', 'file format').choices(['csv', 'json']).default('csv'))
    .option('--breakdown <dimensions>', 'also break each row down by the values of a dimension, or of several separated by commas (e.g. country,device); any of TALLY_DIMENSIONS')
    .option('--out <file>', 'write here (via FILE.partial, renamed when complete) instead of stdout')
    .option('-q, --quiet', 'no progress on stderr')
    .addHelpText('after', `
A statement is final when every hour of it is final: closed in every partition (past its end plus
TALLY_ALLOWED_LATENESS_MS plus TALLY_DEDUP_HORIZON_MS) and written to the immutable billing ledger.
A final export is byte-identical on every run, whatever arrives later; events too late for their own
period are listed as late_unbillable in the statement of the period they arrived in. Otherwise it is
provisional (each row says live, provisional or final; it carries its generation time). Every
statement names the Kafka offset ranges its final numbers came from (lineage).

--breakdown adds a section after the totals (CSV: "# section: breakdowns", then one line per
period, campaign, dimension and value; JSON: "breakdowns"): each value with its impressions and
exact spend, most impressions first. A dimension's values of a row sum to that row exactly; what
was counted before the dimension was configured shows as "unknown". The section of a final
statement is final too: byte-identical on every run. In a provisional one, a row not final yet may
grow between the rows and the section being read. Only dimensions in TALLY_DIMENSIONS can be
asked for. Without --breakdown the file is exactly what it always was.

Exit code 1 on any error; an incomplete --out file is never left under FILE.`)
    .action(async (flags: ExportFlags) => {
      const config = loadConfig();
      let q: ExportQuery;
      try {
        q = parseExportParams({
          advertiser_id: flags.advertiser, from: flags.from, to: flags.to, granularity: flags.granularity, format: flags.format, breakdown: flags.breakdown,
        }, config.dimensions);
      } catch (err) {
        if (err instanceof BillingParamError) {
          const flag = { advertiser_id: '--advertiser', from: '--from', to: '--to' }[err.parameter] ?? `--${err.parameter}`;
          throw new InvalidArgumentError(`${flag}: ${err.message.slice(err.parameter.length + 1)}`);
        }
        throw err;
      }
      const ch = createClickHouse(config, { requestTimeoutMs: 60_000 });
      const partial = flags.out === undefined ? undefined : `${flags.out}.partial`;
      const out = partial === undefined ? process.stdout : fs.createWriteStream(partial);
      const write = (chunk: string) => new Promise<void>((resolve, reject) => {
        out.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
      const t0 = Date.now();
      const progress = (rows: number) => {
        if (!flags.quiet) process.stderr.write(`tally billing export: ${rows} rows written (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
      };
      try {
        const result = await runExport(ch, config, q, write, {
          onStart: (meta) => {
            if (!flags.quiet) process.stderr.write(`tally billing export: ${meta.advertiserId}, status ${meta.status}${meta.breakdown === undefined ? '' : `, breakdown by ${meta.breakdown.join(', ')}`}\n`);
          },
          onProgress: progress,
        });
        if (partial !== undefined && flags.out !== undefined) {
          await new Promise<void>((resolve, reject) => (out as fs.WriteStream).end((err?: Error | null) => (err ? reject(err) : resolve())));
          fs.renameSync(partial, flags.out);
        }
        if (!flags.quiet) {
          process.stderr.write(`tally billing export: done, ${result.rows} rows${q.breakdown === undefined ? '' : ` (+ ${result.breakdownRows} breakdown rows)`}, status ${result.status}, `
            + `impressions ${result.totals.impressions}, spend ${result.totals.spend}, late_unbillable ${result.lateUnbillableEvents}, sha256 ${result.sha256}\n`);
        }
      } catch (err) {
        if (partial !== undefined) {
          (out as fs.WriteStream).destroy();
          fs.rmSync(partial, { force: true });
        }
        throw err;
      } finally {
        await ch.close();
      }
    });
}

export function billingCommand(): Command {
  return new Command('billing')
    .description('billing statements from ClickHouse (exact, final or provisional)')
    .addCommand(exportCommand());
}
