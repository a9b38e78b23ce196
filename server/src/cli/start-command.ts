import { Command } from 'commander';
import { ensureWebBuild } from '../api/web-assets.js';
import { TokenStore } from '../auth/index.js';
import { createClickHouse } from '../clickhouse/index.js';
import { loadConfig, type TallyConfig } from '../config/index.js';
import { stackUp } from '../stack/index.js';
import { RoleSupervisor } from '../stack/role-supervisor.js';
import { createLogger } from '../observability/index.js';
import { migrateCommandAction } from './migrate-command.js';
import { runRole, serviceUntilStopped } from './run-service.js';

/** Name of the admin token `tally start` makes for the newcomer; the previous one is revoked at every start. */
export const DEMO_TOKEN_NAME = 'demo-admin';

/** A fresh demo admin token; earlier demo tokens are revoked, so only the one printed last works. */
async function freshDemoToken(config: TallyConfig): Promise<string> {
  const ch = createClickHouse(config);
  try {
    const store = TokenStore.forClickHouse(ch, config.clickhouse.database);
    await store.revokeByName(DEMO_TOKEN_NAME);
    return (await store.create(DEMO_TOKEN_NAME, ['admin'])).token;
  } finally {
    await ch.close();
  }
}

/** Polls /healthz until the API answers (or the time is up), so the box is printed after its start-up lines. */
async function waitForApi(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 300));
  }
  return false;
}

/**
 * The roles' stderr reaches the terminal through a pipe (RoleSupervisor prefixes each line with
 * the role), so on their own they would log JSON: when the lines end on a terminal and LOG_FORMAT
 * does not say otherwise, ask them for pretty lines, coloured unless NO_COLOR is set.
 */
export function roleLogEnv(env: NodeJS.ProcessEnv = process.env, outIsTTY = process.stdout.isTTY === true): NodeJS.ProcessEnv {
  if (!outIsTTY || (env.LOG_FORMAT !== undefined && env.LOG_FORMAT !== 'auto')) return {};
  return { LOG_FORMAT: 'pretty', ...(env.NO_COLOR || env.FORCE_COLOR !== undefined || env.TERM === 'dumb' ? {} : { FORCE_COLOR: '1' }) };
}

export function box(lines: string[]): string {
  const width = Math.max(...lines.map((l) => l.length));
  const bar = '─'.repeat(width + 2);
  return [`┌${bar}┐`, ...lines.map((l) => `│ ${l.padEnd(width)} │`), `└${bar}┘`].join('\n');
}

export function startCommand(): Command {
  return new Command('start')
    .description('bring up the local stack, apply migrations, run the aggregator, sink and API/dashboard, and feed them demo traffic; prints a fresh admin token for the dashboard; Ctrl-C stops the service (`tally stack down` stops the servers)')
    .option('--no-demo', 'no demo traffic')
    .option('--demo-rate <n>', 'demo impressions per second', '50')
    .action(async (opts: { demo: boolean; demoRate: string }) => {
      const say = (line: string) => process.stdout.write(`${line}\n`);
      const config = loadConfig();
      await stackUp(config, (m) => say(`tally stack: ${m}`));
      await migrateCommandAction();
      // A failed dashboard build does not stop the pipeline: the API serves a page saying how to build it.
      await ensureWebBuild((m) => say(`tally ${m}`)).catch((err: unknown) => say(`tally web: ${err instanceof Error ? err.message : String(err)}`));
      const token = await freshDemoToken(config);
      const supervisor = new RoleSupervisor(say);
      const logEnv = roleLogEnv();
      const roles = serviceUntilStopped(async () => {
        supervisor.start({ name: 'aggregator', args: ['aggregator'], env: { ...logEnv, TALLY_INSTANCE_ID: 'local-1' } });
        supervisor.start({ name: 'sink', args: ['sink'], env: logEnv });
        supervisor.start({ name: 'api', args: ['api', '--no-web-build'], env: logEnv });
        if (opts.demo) {
          // One minute of traffic at a time, again and again: duplicates, late and malformed events included.
          supervisor.start({ name: 'demo', repeat: true, env: logEnv, args: ['generate', '--rate', opts.demoRate, '--duration', '60', '--id-prefix', 'demo-', '--duplicates', '0.05', '--quiet'] });
        }
        return () => supervisor.stop();
      });
      const stopped = runRole({ name: 'start', log: createLogger('start', config.logLevel), services: [roles] });
      const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`;
      const up = await Promise.race([waitForApi(url, 60_000), stopped.then(() => null)]);
      if (up !== null) {
        say(box([
          `tally dashboard: ${url}${up ? '' : '   (still starting; see the api lines above)'}`,
          '',
          'admin token (sign in with it; a new one replaces it at every `tally start`):',
          token,
          '',
          `API: curl -H "Authorization: Bearer <token>" ${url}/api/v1/me`,
        ]));
        say(`tally: ready — Kafka ${config.kafka.brokers}, ClickHouse ${config.clickhouse.url} (database ${config.clickhouse.database}); Ctrl-C to stop`);
      }
      await stopped;
      say('tally: stopped (the stack keeps running; `npm run stack -- down` stops it)');
    });
}
