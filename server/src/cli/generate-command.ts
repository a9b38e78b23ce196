import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import { loadConfig } from '../config/index.js';
import { InvalidArgumentError } from '../errors/index.js';
import { ensureTopics } from '../kafka/index.js';
import { DEAD_LETTER_REASONS } from '../contracts/dead-letter-reasons.js';
import {
  DEFAULT_GENERATOR_OPTIONS, KEY_MODE_OPTIONS, generate, truthTotals, writeTruth,
  type GenerateOptions, type GeneratorOptions,
} from '../tools/index.js';

const D = DEFAULT_GENERATOR_OPTIONS;

function intArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new CommanderArgumentError(`an integer ≥ ${min}`);
    return n;
  };
}

function numArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new CommanderArgumentError(`a number from ${min} to ${max}`);
    return n;
  };
}

/** The command's flags: the generator's options as commander names them, plus the run's own. */
type GenerateFlags = Omit<GeneratorOptions, 'rate' | 'durationS' | 'spanMs' | 'seed'> & {
  rate?: number;
  duration?: number;
  spanMs?: number;
  seed?: number;
  lateTimeout: number;
  truth?: string;
  batch: number;
  quiet?: boolean;
};

export function generateCommand(): Command {
  return new Command('generate')
    .description('produce synthetic impressions (with duplicates, late, too-late and malformed records) to the impressions topic and write the ground truth the pipeline must reach')
    .addOption(new Option('--count <n>', 'original (unique) impressions of the main run').argParser(intArg(0)).default(D.count).conflicts('rate'))
    .addOption(new Option('--rate <r>', 'paced mode: original impressions per second (with --duration); event times follow the wall clock').argParser(numArg(0.001, 10_000_000)))
    .addOption(new Option('--duration <s>', 'paced mode: seconds to run').argParser(numArg(0.001, 30 * 86_400)))
    .addOption(new Option('--advertisers <n>', 'advertisers (adv-1 …)').argParser(intArg(1)).default(D.advertisers))
    .addOption(new Option('--campaigns <m>', 'campaigns per advertiser (adv-1-cmp-1 …)').argParser(intArg(1)).default(D.campaigns))
    .addOption(new Option('--id-prefix <p>', 'prefix of every advertiser, campaign and impression id (verify filters by it)').default(D.idPrefix))
    .addOption(new Option('--duplicates <ratio>', 'extra copies (same id, ts and body) per original impression').argParser(numArg(0, 10)).default(D.duplicates))
    .addOption(new Option('--late-retry-ratio <ratio>', 'share of the duplicates re-sent at the very end of the run instead of soon after').argParser(numArg(0, 1)).default(D.lateRetryRatio))
    .addOption(new Option('--jitter-ms <ms>', 'out-of-order event-time jitter').argParser(intArg(0)).default(D.jitterMs))
    .addOption(new Option('--span-ms <ms>', 'count mode: event times spread over this span ending at now (default 5 min, less if the dedup horizon is short)').argParser(intArg(1)))
    .addOption(new Option('--late-within-horizon <n>', 'impressions 10–30 min old sent at the end: counted, windows revised').argParser(intArg(0)).default(D.lateWithinHorizon))
    .addOption(new Option('--too-late <n>', 'impressions ~3 h old sent at the end: dead-lettered as too_late, not counted').argParser(intArg(0)).default(D.tooLate))
    .addOption(new Option('--late-timeout <s>', 'the late and too-late impressions are sent once every partition\'s watermark makes them so (a running aggregator moves it): longest wait, then fail').argParser(intArg(1)).default(120))
    .addOption(new Option('--bad <n>', `malformed records, cycling through ${DEAD_LETTER_REASONS.filter((r) => r !== 'too_late').join(', ')}`).argParser(intArg(0)).default(D.bad))
    .addOption(new Option('--key-mode <mode>', 'home: key = impression_id, default partitioner; foreign: key = impression_id, another partition; nokey: no key, random partition; mixed: a third each, per record').choices(KEY_MODE_OPTIONS).default(D.keyMode))
    .addOption(new Option('--seed <n>', 'seed (unsigned 32-bit) for a reproducible run (default: random)').argParser(intArg(0)))
    .addOption(new Option('--truth <file>', 'write the ground truth JSON to this file'))
    .addOption(new Option('--batch <n>', 'records per producer call').argParser(intArg(1)).default(1000))
    .option('-q, --quiet', 'no progress on stderr')
    .action(async (flags: GenerateFlags) => {
      if ((flags.rate === undefined) !== (flags.duration === undefined)) {
        throw new InvalidArgumentError('--rate and --duration go together');
      }
      const config = loadConfig();
      await ensureTopics(config);
      const options: GenerateOptions = {
        count: flags.count,
        rate: flags.rate ?? null,
        durationS: flags.duration ?? null,
        advertisers: flags.advertisers,
        campaigns: flags.campaigns,
        idPrefix: flags.idPrefix,
        duplicates: flags.duplicates,
        lateRetryRatio: flags.lateRetryRatio,
        jitterMs: flags.jitterMs,
        spanMs: flags.spanMs ?? null,
        lateWithinHorizon: flags.lateWithinHorizon,
        tooLate: flags.tooLate,
        bad: flags.bad,
        keyMode: flags.keyMode,
        seed: flags.seed,
        batch: flags.batch,
        lateTimeoutMs: flags.lateTimeout * 1000,
      };
      const started = Date.now();
      const truth = await generate(config, options, flags.quiet ? undefined : (p) => {
        const what = p.phase === 'late_wait' ? 'waiting for the watermark that makes the late records late,' : p.phase.padEnd(4);
        process.stderr.write(`tally generate: ${what} ${p.sent}/${p.total} sent, ${p.ratePerSec}/s, ${(p.elapsedMs / 1000).toFixed(1)} s\n`);
      });
      if (flags.truth) writeTruth(flags.truth, truth);
      const c = truth.counts;
      const totals = truthTotals(truth);
      const dl = DEAD_LETTER_REASONS.filter((r) => truth.deadLetters[r] > 0).map((r) => `${r} ${truth.deadLetters[r]}`).join(', ') || 'none';
      process.stdout.write([
        `tally generate: ${c.sent} records acknowledged on ${config.topics.impressions} in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${truth.phases[0].seed})`,
        `  valid ${c.valid}  unique ${c.unique}  duplicates ${c.duplicatesSent}  late within horizon ${c.lateWithinHorizon}`,
        `  expected dead letters: ${dl}`,
        `  truth: ${truth.rows.length} rows, impressions ${totals.impressions}, spend_micros ${totals.spendMicros}${flags.truth ? ` → ${flags.truth}` : ''}`,
        '',
      ].join('\n'));
    });
}
