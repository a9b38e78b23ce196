/**
 * `tally api`: one HTTP server for the REST API, ingest, /metrics, the socket.io live feed and the
 * dashboard. The server listens first (health, reads and ingest work at once); the live feed is
 * attached next, in the background, and retried while Kafka is unreachable.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { AuthFailureLimiter, TokenStore } from '../auth/index.js';
import { createClickHouse } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { unavailable } from '../http/index.js';
import { IngestProducer } from '../ingest/index.js';
import { fetchMetadata } from '../kafka/index.js';
import { attachLiveFeed, type LiveFeed } from '../live/index.js';
import type { Logger } from '../observability/index.js';
import { ApiMetrics } from './api-metrics.js';
import { createApiApp } from './app.js';
import { readinessCheck } from './health.js';
import { webAssetsRouter } from './web-assets.js';

export interface ApiServer {
  server: http.Server;
  /** The port actually bound (TALLY_HTTP_PORT, or the ephemeral one for port 0). */
  port: number;
  url: string;
  /** Stops accepting, closes the live feed, lets requests in flight finish (up to 10 s), then disconnects Kafka and ClickHouse. */
  close(): Promise<void>;
}

const LIVE_RETRY_FIRST_MS = 2_000;
const LIVE_RETRY_MAX_MS = 30_000;
const CLOSE_GRACE_MS = 10_000;

export async function startApiServer(config: TallyConfig, log: Logger): Promise<ApiServer> {
  const ch = createClickHouse(config, { requestTimeoutMs: Math.min(config.http.requestTimeoutMs, 30_000) });
  const tokens = TokenStore.forClickHouse(ch, config.clickhouse.database, {
    maxLookupsInFlight: config.http.tokenLookupsInFlight, negativeCacheMs: config.http.tokenNegativeCacheMs,
  });
  // One count of failed tokens per address for REST and socket.io handshakes alike.
  const authFailures = new AuthFailureLimiter(config.http.authFailureLimitPerMin);
  const producer = new IngestProducer(config, log);
  const metrics = new ApiMetrics();
  metrics.observeTokenStore(() => tokens.stats);
  let liveFeed: LiveFeed | undefined;
  let closing = false;

  const { app } = createApiApp({
    config,
    log,
    verifier: tokens,
    authFailures,
    clickhouse: ch,
    ingest: producer,
    metrics,
    extraRegistries: (): Registry[] => (liveFeed === undefined ? [] : [liveFeed.registry]),
    pipelineStatus: () => (liveFeed === undefined
      ? Promise.reject(unavailable('the live feed is starting (reading impression-counts); retry in a few seconds'))
      : liveFeed.pipelineStatus()),
    liveFeedReady: () => liveFeed !== undefined && liveFeed.caughtUp,
    readiness: readinessCheck(config, ch),
    webAssets: webAssetsRouter(),
  });

  // The express app is the server's request listener before socket.io attaches: engine.io then
  // takes /socket.io requests and hands every other one to express.
  const server = http.createServer({ requestTimeout: config.http.requestTimeoutMs, headersTimeout: Math.min(config.http.requestTimeoutMs, 20_000) }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Until socket.io attaches, nobody answers a websocket upgrade and the client would hang: refuse
  // it so the dashboard's reconnect logic tries again. (Once attached, liveFeed is set in the same
  // tick, before any other upgrade can arrive, and engine.io answers.)
  server.on('upgrade', (_req: http.IncomingMessage, socket: Duplex) => {
    if (liveFeed !== undefined) return;
    socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nthe live feed is starting (reading impression-counts); retry in a few seconds\n');
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  log.info({ host: config.http.host, port, url }, 'api.listening');
  producer.warmUp();

  // The live feed: retried with backoff while it cannot start (Kafka down at boot).
  let retryTimer: NodeJS.Timeout | undefined;
  let attaching: Promise<void> | undefined;
  const attach = (delayMs: number): void => {
    // A cheap metadata probe first: attachLiveFeed's own connect waits up to 30 s for a broker that is
    // down, and a librdkafka client still connecting holds up the process's exit for that long.
    attaching = fetchMetadata(config.kafka.brokers, 3_000).then(() => attachLiveFeed(server, { config, verifier: tokens, authFailures, log })).then(
      async (feed) => {
        if (closing) {
          await feed.close();
          return;
        }
        liveFeed = feed;
        log.info({ caughtUp: feed.caughtUp }, 'api.live_feed_attached');
      },
      (err: unknown) => {
        if (closing) return;
        log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: delayMs }, 'api.live_feed_failed');
        retryTimer = setTimeout(() => attach(Math.min(delayMs * 2, LIVE_RETRY_MAX_MS)), delayMs);
        retryTimer.unref();
      },
    );
  };
  attach(LIVE_RETRY_FIRST_MS);

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      if (retryTimer) clearTimeout(retryTimer);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // A feed still connecting is closed by its own callback (closing is set); wait a little for it.
      await Promise.race([attaching?.catch(() => undefined), new Promise((r) => setTimeout(r, 5_000).unref())]);
      await liveFeed?.close().catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'api.live_feed_close_failed'));
      const grace = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      await stopped;
      clearTimeout(grace);
      await producer.close();
      await ch.close().catch(() => undefined);
      log.info('api.closed');
    })();
    return closed;
  };

  return { server, port, url, close };
}
