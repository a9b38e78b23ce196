/**
 * The live feed: impression-counts (read_committed) → LiveState → socket.io rooms, plus the
 * pipeline status. Attach it to the API's http server:
 *
 *   const feed = await attachLiveFeed(server, { config, verifier, log });
 *   app.get('/api/v1/pipeline', async (_req, res) => res.json(await feed.pipelineStatus()));
 *   …
 *   await feed.close();   // before server.close()
 */
import type http from 'node:http';
import type { ClickHouseClient } from '../clickhouse/index.js';
import { createClickHouse } from '../clickhouse/index.js';
import type { Registry } from 'prom-client';
import type { PipelineStatus } from '../contracts/api-types.js';
import { AuthFailureLimiter } from '../auth/auth-failure-limiter.js';
import type { TokenVerifier } from '../auth/principal.js';
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { FeedConsumer } from './feed-consumer.js';
import { preloadRows } from './live-clickhouse.js';
import { LiveMetrics } from './live-metrics.js';
import { LiveServer } from './live-server.js';
import { LiveState } from './live-state.js';
import { PipelineMonitor } from './pipeline-monitor.js';

export type * from '../contracts/live-protocol.js';
export { LiveState, liveRangeStart, type LiveRowInput, type LiveStateOptions, type DrainResult, type FinalTotals } from './live-state.js';
export { LiveMetrics } from './live-metrics.js';
export { throughputFromSamples } from './pipeline-monitor.js';
export { FLUSH_INTERVAL_MS, MIN_FLUSH_GAP_MS } from './live-server.js';
export { viewRefusal, initialView, advertiserRoom, ADMIN_ROOM } from './live-views.js';

export interface LiveFeedOptions {
  config: TallyConfig;
  verifier: TokenVerifier;
  /** Failed tokens per client address, shared with REST; default: one of its own. */
  authFailures?: AuthFailureLimiter;
  log: Logger;
  /** Register the feed's metrics here (e.g. the API's registry); default: a registry of its own (LiveFeed.registry). */
  registry?: Registry;
  /** How long attachLiveFeed waits for the feed to read impression-counts to its end before it serves anyway (default 30 s). */
  catchUpTimeoutMs?: number;
}

export interface LiveFeed {
  pipelineStatus(): Promise<PipelineStatus>;
  close(): Promise<void>;
  /** Where the tally_live_* metrics are (the one passed in, or the feed's own). */
  readonly registry: Registry;
  /** true once impression-counts was read to its end as of the start (for /readyz). */
  readonly caughtUp: boolean;
}

const PRELOAD_RETRY_MS = 5_000;

function liveClickHouse(config: TallyConfig): ClickHouseClient {
  // The preload of a day of rows may take a while on a big table; status queries bound themselves.
  // Failures are reported by the feed itself (once, or as clickhouseReachable=false).
  return createClickHouse(config, { requestTimeoutMs: 120_000, application: 'tally-live', log: 'off' });
}

export async function attachLiveFeed(httpServer: http.Server, opts: LiveFeedOptions): Promise<LiveFeed> {
  const { config, verifier } = opts;
  const log = opts.log.child({ component: 'live' });
  const metrics = new LiveMetrics(opts.registry);
  const state = new LiveState({ partitions: config.partitions, windowMs: config.windowMs, allowedLatenessMs: config.allowedLatenessMs }, Date.now());
  const ch = liveClickHouse(config);

  // 1. The range from ClickHouse: windows whose rows the compacted topic no longer holds.
  let preloadTimer: NodeJS.Timeout | undefined;
  let closed = false;
  const preload = async (): Promise<boolean> => {
    const t0 = Date.now();
    try {
      const rows = await preloadRows(ch, config.clickhouse.database, state.rangeStart);
      let applied = 0;
      for (const r of rows) if (state.applyRow(r).kind === 'applied') applied++;
      log.info({ rows: rows.length, applied, from: state.rangeStart, ms: Date.now() - t0 }, 'live.preloaded_from_clickhouse');
      return true;
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'live.preload_failed_retrying');
      return false;
    }
  };
  if (!(await preload())) {
    // Merging is by version, so loading later (after Kafka) is just as right; numbers only go up.
    const retry = () => {
      preloadTimer = setTimeout(() => {
        if (closed) return;
        void preload().then((ok) => { if (!ok) retry(); });
      }, PRELOAD_RETRY_MS);
      preloadTimer.unref();
    };
    retry();
  }

  // 2. Kafka from the beginning, then live.
  const consumer = new FeedConsumer(config, state, log, metrics);
  try {
    await consumer.start();
  } catch (err) {
    closed = true;
    if (preloadTimer) clearTimeout(preloadTimer);
    await consumer.stop().catch(() => undefined);
    await ch.close().catch(() => undefined);
    throw err;
  }
  const catchUpTimeoutMs = opts.catchUpTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const caughtUp = await Promise.race([
    consumer.caughtUp.then(() => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), catchUpTimeoutMs); }),
  ]);
  clearTimeout(timer);
  if (!caughtUp) log.warn({ timeoutMs: catchUpTimeoutMs }, 'live.serving_before_caught_up');

  // 3. Status and sockets.
  const monitor = new PipelineMonitor(config, state, consumer, ch, log);
  try {
    await monitor.start();
  } catch (err) {
    closed = true;
    if (preloadTimer) clearTimeout(preloadTimer);
    await monitor.stop().catch(() => undefined);
    await consumer.stop().catch(() => undefined);
    await ch.close().catch(() => undefined);
    throw err;
  }
  const authFailures = opts.authFailures ?? new AuthFailureLimiter(config.http.authFailureLimitPerMin);
  const server = new LiveServer(httpServer, config, state, verifier, authFailures, log, metrics);
  log.info({ path: '/socket.io', rows: state.stats.rows, watermark: state.publishedWatermark }, 'live.attached');

  return {
    registry: metrics.registry,
    get caughtUp() {
      return consumer.isCaughtUp;
    },
    pipelineStatus: () => monitor.status(),
    async close() {
      if (closed) return;
      closed = true;
      if (preloadTimer) clearTimeout(preloadTimer);
      await server.close();
      await monitor.stop();
      await consumer.stop();
      await ch.close().catch(() => undefined);
      log.info('live.closed');
    },
  };
}
