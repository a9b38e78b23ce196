#!/usr/bin/env node
import { Command } from 'commander';
import { TallyError } from './errors/index.js';
import { describeConfig } from './config/index.js';
import { redactUrl } from './observability/redact.js';
import { stackCommand } from './cli/stack-command.js';
import { migrateCommand } from './cli/migrate-command.js';
import { startCommand } from './cli/start-command.js';
import { generateCommand } from './cli/generate-command.js';
import { verifyCommand } from './cli/verify-command.js';
import { aggregatorCommand } from './cli/aggregator-command.js';
import { sinkCommand } from './cli/sink-command.js';
import { apiCommand } from './cli/api-command.js';
import { tokensCommand } from './cli/tokens-command.js';
import { billingCommand } from './cli/billing-command.js';
import { reconcileCommand } from './cli/reconcile-command.js';

const program = new Command('tally')
  .description('exactly-once ad-impression counting: Kafka → windowed aggregator → ClickHouse → live dashboard')
  .showHelpAfterError()
  .addCommand(stackCommand())
  .addCommand(migrateCommand())
  .addCommand(startCommand())
  .addCommand(aggregatorCommand())
  .addCommand(sinkCommand())
  .addCommand(apiCommand())
  .addCommand(tokensCommand())
  .addCommand(billingCommand())
  .addCommand(reconcileCommand())
  .addCommand(generateCommand())
  .addCommand(verifyCommand());

program.command('config').description('the environment variables tally reads, with defaults')
  .option('--markdown', 'as the table in README.md')
  .action((opts: { markdown?: boolean }) => {
    for (const c of describeConfig()) {
      process.stdout.write(opts.markdown
        ? `| \`${c.name}\` | ${c.default === '' ? '' : `\`${c.default}\``} | ${c.description} |\n`
        : `${c.name.padEnd(30)} ${(c.default || '-').padEnd(10)} ${c.description}\n`);
    }
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  // Expected failures (bad config, missing Java…) get one clear line, not a stack trace.
  // Neither ever shows a URL's user:password@ (redactUrl).
  if (err instanceof TallyError) {
    process.stderr.write(`tally: ${redactUrl(err.message)}\n`);
  } else {
    process.stderr.write(`tally: unexpected error: ${redactUrl(err instanceof Error ? err.stack ?? err.message : String(err))}\n`);
  }
  process.exit(1);
});
