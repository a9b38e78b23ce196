import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import { loadConfig } from '../config/index.js';
import { formatVerifyReport, readTruth, verify } from '../tools/index.js';

function secondsArg(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new CommanderArgumentError('seconds ≥ 0');
  return n;
}

interface VerifyFlags {
  truth: string;
  timeout: number;
  stable: number;
  dlq?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function verifyCommand(): Command {
  return new Command('verify')
    .description('compare ClickHouse (impression_counts and, per configured dimension, impression_breakdowns FINAL) with a ground-truth file, re-polling until equal or the timeout; exit code 1 on mismatch')
    .requiredOption('--truth <file>', 'ground-truth JSON written by `tally generate --truth`')
    .addOption(new Option('--timeout <s>', 'keep polling this long for equality').argParser(secondsArg).default(120))
    .addOption(new Option('--stable <s>', 'equality must hold this long before verify passes').argParser(secondsArg).default(0))
    .option('--dlq', 'also compare the dead-letter topic\'s counts per reason (exact only on topics this truth alone wrote to)')
    .option('--json', 'print the result as JSON instead of a table')
    .option('-q, --quiet', 'no progress on stderr')
    .action(async (flags: VerifyFlags) => {
      const config = loadConfig();
      const truth = readTruth(flags.truth);
      const result = await verify(config, truth, {
        timeoutMs: flags.timeout * 1000,
        stableMs: flags.stable * 1000,
        checkDeadLetters: flags.dlq === true,
        onProgress: flags.quiet ? undefined : (p) => {
          const dl = p.deadLetterDifferences === null ? '' : `, ${p.deadLetterDifferences} DLQ reasons differ`;
          process.stderr.write(`tally verify: attempt ${p.attempt}: ${p.error ? `error: ${p.error}` : `${p.differences} keys differ, ${p.breakdownDifferences} breakdown values differ${dl}, impressions ${p.actual.impressions}/${p.expected.impressions}`}\n`);
        },
      });
      process.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatVerifyReport(result)}\n`);
      if (!result.ok) process.exitCode = 1;
    });
}
