/**
 * What every dashboard e2e test starts with: a sandbox with the pipeline running (aggregator and
 * sink), the production web build, tokens, and `tally api` serving that build on a free port.
 */
import { ensureWebBuild } from '../../server/src/api/web-assets.js';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import { freePort } from './free-port.js';
import { Pipeline } from './pipeline.js';
import { RoleProcess } from './role-process.js';
import { createSandbox, type Sandbox } from './sandbox.js';
import { eventually } from './waiting.js';

export interface DashboardStack {
  sb: Sandbox;
  pipeline: Pipeline;
  api: RoleProcess;
  baseUrl: string;
  /** The secret of each token asked for, by name. */
  tokens: Record<string, string>;
}

/**
 * A sandbox named `name` with the aggregator and the sink running, a token per entry of `scopes`
 * (name → scopes), and `tally api` with the web build (built meanwhile) answering /healthz.
 */
export async function startDashboardStack(name: string, scopes: Record<string, string[]>, say: (m: string) => void): Promise<DashboardStack> {
  const built = ensureWebBuild(say);
  const sb = await createSandbox(name);
  const pipeline = new Pipeline(sb);
  pipeline.startAggregator();
  pipeline.startSink();
  const tokens: Record<string, string> = {};
  const ch = createClickHouse(sb.config);
  try {
    const store = TokenStore.forClickHouse(ch, sb.config.clickhouse.database);
    for (const [tokenName, s] of Object.entries(scopes)) tokens[tokenName] = (await store.create(tokenName, s)).token;
  } finally {
    await ch.close();
  }
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  await built;
  const api = new RoleProcess('api', { ...sb.env, TALLY_HTTP_PORT: String(port), TALLY_HTTP_HOST: '127.0.0.1' }, ['--no-web-build']);
  await eventually('tally api to answer /healthz', async () => (await fetch(`${baseUrl}/healthz`)).ok, 60_000, 200);
  return { sb, pipeline, api, baseUrl, tokens };
}
