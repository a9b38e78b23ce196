import { Command } from 'commander';
import { TokenStore } from '../auth/index.js';
import { clickHouseErrorCode, createClickHouse } from '../clickhouse/index.js';
import { loadConfig } from '../config/index.js';
import { TallyError } from '../errors/index.js';

/** ClickHouse's UNKNOWN_TABLE and UNKNOWN_DATABASE (the same codes on 18.16 and current releases; their messages differ). */
const NOT_MIGRATED_CODES = new Set(['60', '81']);

/** Runs fn with a TokenStore on the configured ClickHouse; connection failures become one clear line. */
async function withStore<T>(fn: (store: TokenStore) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const ch = createClickHouse(config, { requestTimeoutMs: 15_000, log: 'off' });
  try {
    return await fn(TokenStore.forClickHouse(ch, config.clickhouse.database));
  } catch (err) {
    if (err instanceof TallyError) throw err;
    const msg = (err instanceof Error ? err.message : String(err)).trim();
    const hint = NOT_MIGRATED_CODES.has(clickHouseErrorCode(err) ?? '') ? ' (run `tally migrate` first)' : '';
    throw new TallyError(`token store at ${config.clickhouse.url} (database ${config.clickhouse.database}): ${msg}${hint}`, { cause: err });
  } finally {
    await ch.close();
  }
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function tokensCommand(): Command {
  const cmd = new Command('tokens')
    .description('API bearer tokens (tly_<id>_<secret>): create, list, revoke. Only a hash of the secret is stored; a revoke takes effect within a second');

  cmd.command('create')
    .description('create a token and print it once (stdout: the token alone; stderr: what it is)')
    .requiredOption('--name <name>', 'what the token is for (1 to 100 letters, digits, space and . _ : @ / + = -)')
    .option('--scope <scope>', 'admin | ingest | ingest:<advertiser id> | advertiser:<advertiser id>; repeat for several', collect, [] as string[])
    .addHelpText('after', `
Scopes:
  admin                  everything: all advertisers, pipeline status, ingest, /metrics from anywhere
  ingest                 POST /api/v1/impressions only, events of any advertiser (an ad server)
  ingest:<id>            POST /api/v1/impressions only, events of that advertiser only: any other
                         event is refused (advertiser_not_allowed; 403 if all are); repeat for several
  advertiser:<id>        read that advertiser's counts, campaigns and live feed (id compared exactly)

Example:
  TOKEN=$(tally tokens create --name ad-server-1 --scope ingest)
  curl -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
       -d '[{"impression_id":"i-1","ts":1764150000123,"advertiser_id":"adv-42","campaign_id":"cmp-7"}]' \\
       http://127.0.0.1:8080/api/v1/impressions`)
    .action(async (opts: { name: string; scope: string[] }) => {
      const { token, id } = await withStore((s) => s.create(opts.name, opts.scope));
      process.stderr.write(`tally tokens: created ${id} "${opts.name}" with scopes ${opts.scope.join(', ')}; the token below is shown only now\n`);
      process.stdout.write(`${token}\n`);
    });

  cmd.command('list')
    .description('every token: id, name, scopes, created, active or revoked (never a secret)')
    .option('--json', 'as JSON lines')
    .action(async (opts: { json?: boolean }) => {
      const tokens = await withStore((s) => s.list());
      if (opts.json) {
        for (const t of tokens) process.stdout.write(`${JSON.stringify({ ...t, createdAt: new Date(t.createdAt).toISOString() })}\n`);
        return;
      }
      if (tokens.length === 0) {
        process.stdout.write('no tokens yet (tally tokens create --name N --scope S)\n');
        return;
      }
      const rows = tokens.map((t) => [t.id, t.revoked ? 'revoked' : 'active', new Date(t.createdAt).toISOString().replace('.000Z', 'Z'), t.name, t.scopes.join(',')]);
      const head = ['ID', 'STATUS', 'CREATED', 'NAME', 'SCOPES'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}\n`);
    });

  cmd.command('revoke')
    .description('revoke a token by id (as `tally tokens list` shows it); API calls with it fail within a second')
    .argument('<id>', 'the token id: 12 hex digits')
    .action(async (id: string) => {
      const outcome = await withStore((s) => s.revoke(id));
      if (outcome === 'not_found') throw new TallyError(`no token with id ${id}`);
      process.stdout.write(outcome === 'revoked' ? `tally tokens: revoked ${id}\n` : `tally tokens: ${id} was already revoked\n`);
    });

  return cmd;
}
