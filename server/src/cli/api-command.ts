import { Command } from 'commander';
import { startApiServer } from '../api/index.js';
import { ensureWebBuild } from '../api/web-assets.js';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../observability/index.js';
import { runRole, serviceUntilStopped } from './run-service.js';

export function apiCommand(): Command {
  return new Command('api')
    .description('serve the REST API (/api/v1, bearer tokens), HTTP ingest, /healthz, /readyz, /metrics, the socket.io live feed and the dashboard on TALLY_HTTP_HOST:TALLY_HTTP_PORT; SIGTERM lets requests in flight finish and exits')
    .option('--no-web-build', 'serve web/dist as it is, without building the dashboard when it is missing or stale')
    .action(async (opts: { webBuild: boolean }) => {
      const config = loadConfig();
      const log = createLogger('api', config.logLevel);
      if (opts.webBuild) {
        // A missing build is not fatal: the API works, and / says how to build the dashboard.
        await ensureWebBuild((m) => log.info(m)).catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'api.web_build_failed'));
      }
      const api = serviceUntilStopped(async () => {
        const server = await startApiServer(config, log);
        return () => server.close();
      });
      await runRole({ name: 'api', log, services: [api] });
      // Closed: exit at once, not whenever the client libraries let go of their last handles.
      process.exit(0);
    });
}
