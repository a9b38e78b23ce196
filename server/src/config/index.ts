import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Dimension } from '../contracts/dimensions.js';
import { envSchema } from './env-schema.js';
import { clickhouseConnection, type ClickHouseConnection } from './clickhouse-connection.js';
import { ConfigError } from '../errors/index.js';
import { redactUrl } from '../observability/redact.js';

export { envSchema } from './env-schema.js';
export { PASSWORD_FILE_NAME, passwordFile, readStackPassword } from './stack-password.js';
export { CLICKHOUSE_REPLICA_PORT_STEP } from './clickhouse-connection.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface Topics {
  impressions: string;
  counts: string;
  changelog: string;
  dlq: string;
  /** Internal: records forwarded to their home partition, and each source partition's watermark markers. */
  repartition: string;
}

/** Local stack Kafka node i listens on TALLY_KAFKA_PORT and TALLY_KAFKA_CONTROLLER_PORT plus this times i. */
export const KAFKA_NODE_PORT_STEP = 100;

export interface TallyConfig {
  kafka: {
    /** Bootstrap servers; `external` is true when given by KAFKA_BROKERS (tally starts no broker). */
    brokers: string;
    external: boolean;
    port: number;
    controllerPort: number;
    /** Local stack KRaft nodes (1 or 3); node i listens on port + 100·i. */
    nodes: number;
  };
  /** The URL never holds credentials; the local stack's password is read from its file (see clickhouseConnection). */
  clickhouse: ClickHouseConnection;
  stackDir: string;
  cacheDir: string;
  topics: Topics;
  groups: { aggregator: string; sink: string };
  partitions: number;
  windowMs: number;
  outOfOrdernessMs: number;
  allowedLatenessMs: number;
  dedupHorizonMs: number;
  maxClockSkewMs: number;
  /** TALLY_DIMENSIONS, in order. */
  dimensions: Dimension[];
  dimensionValueLimit: number;
  processingGuarantee: 'exactly_once' | 'at_least_once';
  assignmentStrategy: 'cooperative-sticky' | 'range';
  commitIntervalMs: number;
  idleTimeoutMs: number;
  transactionTimeoutMs: number;
  instanceId: string;
  /** TALLY_STREAM_THREADS: aggregator workers in one `tally aggregator`. */
  streamThreads: number;
  sink: { batchRows: number; batchMs: number };
  http: {
    host: string;
    port: number;
    /** Allowed browser origins (exact match); empty: no CORS headers. */
    corsOrigins: string[];
    apiRateLimitPerMin: number;
    ingestRateLimitPerMin: number;
    authFailureLimitPerMin: number;
    requestTimeoutMs: number;
    ingestTimeoutMs: number;
    metricsAuth: 'loopback' | 'token';
    tokenLookupsInFlight: number;
    tokenNegativeCacheMs: number;
    ingestMaxInflateRatio: number;
    ingestMaxJsonDepth: number;
  };
  /** Abuse limits of the socket.io live feed (per API process). */
  live: {
    maxMessageBytes: number;
    socketsPerToken: number;
    handshakesPerConnection: number;
    joinsPer10s: number;
    snapshotsPerMinPerToken: number;
  };
  metricsPort: number;
  logLevel: string;
}

/** Reads and validates the environment; a bad value throws a ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): TallyConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}=${JSON.stringify(shownValue(String(i.path[0]), env[String(i.path[0])] ?? ''))}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.TALLY_WINDOW_MS % 1000 !== 0 || 3_600_000 % e.TALLY_WINDOW_MS !== 0) {
    // Billing periods are UTC hours (days and months are unions of them): a window never straddles one.
    throw new ConfigError(`invalid configuration:\n  TALLY_WINDOW_MS=${e.TALLY_WINDOW_MS}: must be whole seconds that divide an hour (3600000) exactly, e.g. 1000, 60000, 300000`);
  }
  const prefix = e.TALLY_TOPIC_PREFIX;
  const stackDir = path.resolve(e.TALLY_STACK_DIR ?? path.join(repoRoot, '.stack'));
  return {
    kafka: {
      brokers: e.KAFKA_BROKERS ?? Array.from({ length: e.TALLY_KAFKA_NODES }, (_, i) => `127.0.0.1:${e.TALLY_KAFKA_PORT + KAFKA_NODE_PORT_STEP * i}`).join(','),
      external: e.KAFKA_BROKERS !== undefined,
      port: e.TALLY_KAFKA_PORT,
      controllerPort: e.TALLY_KAFKA_CONTROLLER_PORT,
      nodes: e.TALLY_KAFKA_NODES,
    },
    clickhouse: clickhouseConnection({
      url: e.CLICKHOUSE_URL,
      user: e.CLICKHOUSE_USER,
      password: e.CLICKHOUSE_PASSWORD,
      database: e.TALLY_CLICKHOUSE_DATABASE,
      httpPort: e.TALLY_CLICKHOUSE_HTTP_PORT,
      tcpPort: e.TALLY_CLICKHOUSE_TCP_PORT,
      replicas: e.TALLY_CLICKHOUSE_REPLICAS,
      zookeeperPort: e.TALLY_ZOOKEEPER_PORT,
      cluster: e.TALLY_CLICKHOUSE_CLUSTER,
      insertQuorum: e.TALLY_CLICKHOUSE_INSERT_QUORUM,
      stackDir,
    }),
    stackDir,
    cacheDir: path.resolve(e.TALLY_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'tally')),
    topics: {
      impressions: e.TALLY_IMPRESSIONS_TOPIC ?? `${prefix}impressions`,
      counts: `${prefix}impression-counts`,
      changelog: `${prefix}aggregator-dedup-changelog`,
      dlq: `${prefix}impressions-dlq`,
      repartition: `${prefix}aggregator-repartition`,
    },
    groups: { aggregator: `${prefix}tally-aggregator`, sink: `${prefix}tally-clickhouse-sink` },
    partitions: e.TALLY_PARTITIONS,
    windowMs: e.TALLY_WINDOW_MS,
    outOfOrdernessMs: e.TALLY_OUT_OF_ORDERNESS_MS,
    allowedLatenessMs: e.TALLY_ALLOWED_LATENESS_MS,
    dedupHorizonMs: e.TALLY_DEDUP_HORIZON_MS,
    maxClockSkewMs: e.TALLY_MAX_CLOCK_SKEW_MS,
    dimensions: e.TALLY_DIMENSIONS,
    dimensionValueLimit: e.TALLY_DIMENSION_LIMIT,
    processingGuarantee: e.TALLY_PROCESSING_GUARANTEE,
    assignmentStrategy: e.TALLY_ASSIGNMENT_STRATEGY,
    commitIntervalMs: e.TALLY_COMMIT_INTERVAL_MS,
    idleTimeoutMs: e.TALLY_IDLE_TIMEOUT_MS,
    transactionTimeoutMs: e.TALLY_TRANSACTION_TIMEOUT_MS,
    streamThreads: e.TALLY_STREAM_THREADS,
    instanceId: e.TALLY_INSTANCE_ID ?? `${os.hostname().replace(/[^A-Za-z0-9._-]/g, '_')}-${process.pid}`,
    sink: { batchRows: e.TALLY_SINK_BATCH_ROWS, batchMs: e.TALLY_SINK_BATCH_MS },
    http: {
      host: e.TALLY_HTTP_HOST,
      port: e.TALLY_HTTP_PORT,
      corsOrigins: e.TALLY_CORS_ORIGINS.split(',').map((o) => o.trim()).filter((o) => o !== ''),
      apiRateLimitPerMin: e.TALLY_API_RATE_LIMIT_PER_MIN,
      ingestRateLimitPerMin: e.TALLY_INGEST_RATE_LIMIT_PER_MIN,
      authFailureLimitPerMin: e.TALLY_AUTH_FAILURE_LIMIT_PER_MIN,
      requestTimeoutMs: e.TALLY_HTTP_REQUEST_TIMEOUT_MS,
      ingestTimeoutMs: e.TALLY_INGEST_TIMEOUT_MS,
      metricsAuth: e.TALLY_METRICS_AUTH,
      tokenLookupsInFlight: e.TALLY_TOKEN_LOOKUPS_IN_FLIGHT,
      tokenNegativeCacheMs: e.TALLY_TOKEN_NEGATIVE_CACHE_MS,
      ingestMaxInflateRatio: e.TALLY_INGEST_MAX_INFLATE_RATIO,
      ingestMaxJsonDepth: e.TALLY_INGEST_MAX_JSON_DEPTH,
    },
    live: {
      maxMessageBytes: e.TALLY_LIVE_MAX_MESSAGE_BYTES,
      socketsPerToken: e.TALLY_LIVE_SOCKETS_PER_TOKEN,
      handshakesPerConnection: e.TALLY_LIVE_HANDSHAKES_PER_CONNECTION,
      joinsPer10s: e.TALLY_LIVE_JOINS_PER_10S,
      snapshotsPerMinPerToken: e.TALLY_LIVE_SNAPSHOTS_PER_MIN_PER_TOKEN,
    },
    metricsPort: e.TALLY_METRICS_PORT,
    logLevel: e.LOG_LEVEL,
  };
}

/** A rejected value as the error message shows it: never a password, never a URL's userinfo. */
function shownValue(name: string, value: string): string {
  if (name === 'CLICKHOUSE_PASSWORD') return '***';
  if (name !== 'CLICKHOUSE_URL') return value;
  const shown = redactUrl(value);
  return shown.replace(/^[a-z][a-z0-9+.-]*:\/\/\*\*\*@/i, '').includes('@') ? '*** (not shown: it holds an @)' : shown;
}

/** The config table for the README: variable, default, meaning. */
export function describeConfig(): Array<{ name: string; default: string; description: string }> {
  return Object.entries(envSchema.shape).map(([name, schema]) => {
    const s = schema as z.ZodType;
    let def = '';
    const r = s.safeParse(undefined);
    if (r.success && r.data !== undefined) def = String(r.data);
    return { name, default: def, description: s.description ?? '' };
  });
}
