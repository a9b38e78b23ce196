import { z } from 'zod';
import { DIMENSIONS, isDimension } from '../contracts/dimensions.js';

/**
 * Every environment variable tally reads, with its default and meaning.
 * The README's config table is generated from the `describe` texts (see `tally config`).
 */
const port = z.coerce.number().int().min(1).max(65535);
const ms = z.coerce.number().int().min(0);

export const envSchema = z.object({
  KAFKA_BROKERS: z.string().min(1).optional().describe(
    'Kafka bootstrap servers. Unset: the local stack broker is started and used.'),
  CLICKHOUSE_URL: z.string().refine((v) => v.split(',').every((u) => URL.canParse(u.trim())), 'must be a URL, or URLs separated by commas').optional().describe(
    'ClickHouse HTTP URL, or the replicas\' URLs separated by commas (a request goes to the one that answered last, or on to the next when it cannot be reached). Unset: the local stack ClickHouse is started and used. user:password@ in it are used as user and password (over CLICKHOUSE_USER/PASSWORD) and never printed or logged.'),
  CLICKHOUSE_USER: z.string().default('default').describe('ClickHouse user.'),
  CLICKHOUSE_PASSWORD: z.string().default('').describe(
    'ClickHouse password. Unset or empty with the local stack: the one `tally stack up` generated, read from <stack dir>/clickhouse-password.'),
  TALLY_CLICKHOUSE_DATABASE: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).default('tally').describe(
    'ClickHouse database holding impression_counts.'),
  TALLY_STACK_DIR: z.string().optional().describe(
    'Where the local stack keeps data, configs, pids and logs. Default: <repo>/.stack'),
  TALLY_CACHE_DIR: z.string().optional().describe(
    'Download cache (Kafka jars), shared by clones. Default: ~/.cache/tally'),
  TALLY_KAFKA_PORT: port.default(19092).describe('Local stack broker port.'),
  TALLY_KAFKA_CONTROLLER_PORT: port.default(19093).describe('Local stack KRaft controller port.'),
  TALLY_KAFKA_NODES: z.coerce.number().int().refine((n) => n === 1 || n === 3, 'must be 1 or 3').default(1).describe(
    'Local stack Kafka nodes: 1, or 3 (a KRaft quorum; node i listens on TALLY_KAFKA_PORT + 100·i and TALLY_KAFKA_CONTROLLER_PORT + 100·i; topics get replication factor 3, min.insync.replicas 2).'),
  TALLY_CLICKHOUSE_HTTP_PORT: port.default(18123).describe('Local stack ClickHouse HTTP port.'),
  TALLY_CLICKHOUSE_TCP_PORT: port.default(19000).describe('Local stack ClickHouse native port.'),
  TALLY_CLICKHOUSE_REPLICAS: z.coerce.number().int().refine((n) => n === 1 || n === 2, 'must be 1 or 2').default(1).describe(
    'Local stack ClickHouse servers: 1, or 2 replicas of every tally table coordinated by a local ZooKeeper (replica i listens on TALLY_CLICKHOUSE_HTTP_PORT + 100·i and TALLY_CLICKHOUSE_TCP_PORT + 100·i, replicates on TALLY_CLICKHOUSE_TCP_PORT + 100·i + 9).'),
  TALLY_ZOOKEEPER_PORT: port.default(12181).describe('Local stack ZooKeeper client port (started only with TALLY_CLICKHOUSE_REPLICAS=2).'),
  TALLY_CLICKHOUSE_CLUSTER: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional().describe(
    'Set: the migrations create tally\'s tables as Replicated*MergeTree at ZooKeeper path /clickhouse/tables/<cluster>/<database>/<table>, replica names from each server\'s {replica} macro, on every server of CLICKHOUSE_URL. Default: tally with TALLY_CLICKHOUSE_REPLICAS=2; unset (single-server tables) otherwise.'),
  TALLY_CLICKHOUSE_INSERT_QUORUM: z.coerce.number().int().min(0).max(16).optional().describe(
    'With a cluster: replicas that must hold an insert before ClickHouse acknowledges it (insert_quorum). Default: every server of CLICKHOUSE_URL, so an acknowledged row survives losing any one replica; inserts wait (the sink retries) while a replica is down, reads do not.'),
  TALLY_TOPIC_PREFIX: z.string().regex(/^[A-Za-z0-9._-]{0,100}$/).default('').describe(
    'Prefix for every topic and consumer group name (tests use a fresh one each).'),
  TALLY_IMPRESSIONS_TOPIC: z.string().regex(/^[A-Za-z0-9._-]{1,249}$/).optional().describe(
    'Name of the input topic, when it exists under another name. Default: <prefix>impressions.'),
  TALLY_PARTITIONS: z.coerce.number().int().min(1).max(1024).default(8).describe(
    'Partitions of impressions and the topics keyed like it. Fixed once data flows (a start with another value is refused).'),
  TALLY_WINDOW_MS: z.coerce.number().int().min(1000).max(3_600_000).default(60_000).describe(
    'Tumbling window size in ms: whole seconds that divide an hour (1 s to 1 h). Fixed once data flows (a restart with another value is refused).'),
  TALLY_OUT_OF_ORDERNESS_MS: ms.default(5_000).describe(
    'A source partition\'s watermark = min(max event time seen, wall clock) minus this. May change between restarts.'),
  TALLY_ALLOWED_LATENESS_MS: ms.default(30_000).describe(
    'A window is final once the watermark passes window end plus this. May change between restarts; a closed window stays closed.'),
  TALLY_DEDUP_HORIZON_MS: ms.default(3_600_000).describe(
    'How long after a window closes its impression ids are kept; older events go to the DLQ as too_late. May change between restarts; an evicted window never reopens.'),
  TALLY_MAX_CLOCK_SKEW_MS: ms.default(300_000).describe(
    'Events further ahead of the wall clock go to the DLQ as future_timestamp.'),
  TALLY_IDLE_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000).describe(
    'A partition caught up and without input for this long holds nothing back while others carry traffic; when all are idle nothing closes, and after such a silence idle partitions still hold for half this long (buffered events flushed meanwhile land first).'),
  TALLY_DIMENSIONS: z.string().default(DIMENSIONS.join(',')).transform((v, ctx) => {
    const names = v.split(',').map((d) => d.trim()).filter((d) => d !== '');
    const bad = names.find((d) => !isDimension(d));
    if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(bad)} is not a dimension; choose from ${DIMENSIONS.join(', ')}` });
    else if (new Set(names).size !== names.length) ctx.addIssue({ code: 'custom', message: 'names a dimension twice' });
    return names.filter(isDimension);
  }).describe(
    `Event fields counts are broken down by, comma-separated, from ${DIMENSIONS.join(', ')}; empty: none. A missing or unusable value counts as \`unknown\`. May change between restarts (a dimension added shows what was counted before it as \`unknown\`).`),
  TALLY_DIMENSION_LIMIT: z.coerce.number().int().min(1).max(1000).default(100).describe(
    'Distinct values one campaign keeps per dimension, window and partition; further new values are counted exactly in the `other` bucket.'),
  TALLY_PROCESSING_GUARANTEE: z.enum(['exactly_once', 'at_least_once']).default('exactly_once').describe(
    'exactly_once: window rows, dedup state and input offsets commit in one Kafka transaction. at_least_once: no transaction (offsets after the records), a crash may count twice; for measuring what exactly-once costs, not for billing.'),
  TALLY_ASSIGNMENT_STRATEGY: z.enum(['cooperative-sticky', 'range']).default('cooperative-sticky').describe(
    'How the aggregators share partitions. cooperative-sticky: a process joining or leaving moves only the partitions that change owner; the others keep counting without a restore. range: every rebalance revokes and restores all of a process\'s partitions (eager). All aggregators of a group must use the same one: to switch, stop them all first.'),
  TALLY_COMMIT_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).default(100).describe(
    'Aggregator transaction interval.'),
  TALLY_TRANSACTION_TIMEOUT_MS: z.coerce.number().int().min(1000).default(15_000).describe(
    'Kafka transaction timeout: bounds how long a crashed process can hold back read_committed readers.'),
  TALLY_STREAM_THREADS: z.coerce.number().int().min(1).max(16).default(1).describe(
    'Workers in one `tally aggregator` (Kafka Streams\' num.stream.threads), each with its own consumer, transactional producer (id <instance>-<i>) and partitions; a worker that dies is replaced; /metrics sums them. Processes, not worker threads: node-rdkafka cannot load in a worker thread.'),
  TALLY_INSTANCE_ID: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional().describe(
    'Stable id of this process; names its transactional id so a restart fences its own zombie at once. Default: hostname-pid.'),
  TALLY_SINK_BATCH_ROWS: z.coerce.number().int().min(1).default(20_000).describe(
    'Sink: max rows per ClickHouse insert.'),
  TALLY_SINK_BATCH_MS: z.coerce.number().int().min(1).default(250).describe(
    'Sink: max time a row waits before its batch is inserted.'),
  TALLY_HTTP_HOST: z.string().default('127.0.0.1').describe('API/dashboard bind address.'),
  TALLY_HTTP_PORT: port.default(8080).describe('API/dashboard port.'),
  TALLY_CORS_ORIGINS: z.string().default('').refine(
    (v) => v.split(',').map((o) => o.trim()).filter((o) => o !== '').every((o) => /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(o)),
    'must be a comma-separated list of origins like https://dash.example.com (scheme://host[:port], no path)',
  ).describe(
    'Origins allowed to call the API from a browser (CORS), comma-separated. Empty: no CORS headers (same-origin dashboard only).'),
  TALLY_API_RATE_LIMIT_PER_MIN: z.coerce.number().int().min(1).default(600).describe(
    'API: requests per minute per token on the read routes (429 beyond; per API process).'),
  TALLY_INGEST_RATE_LIMIT_PER_MIN: z.coerce.number().int().min(1).default(120).describe(
    'API: POST /api/v1/impressions requests per minute per token (429 beyond; per API process).'),
  TALLY_AUTH_FAILURE_LIMIT_PER_MIN: z.coerce.number().int().min(1).default(60).describe(
    'API: requests with a missing or invalid token per minute per client address (429 beyond).'),
  TALLY_TOKEN_LOOKUPS_IN_FLIGHT: z.coerce.number().int().min(1).max(1024).default(8).describe(
    'API: most token lookups against ClickHouse at once per process; up to 32 times as many wait, beyond that a request gets 503 at once.'),
  TALLY_TOKEN_NEGATIVE_CACHE_MS: ms.default(60_000).describe(
    'API: how long a token id found unknown is refused without asking ClickHouse again (0: not remembered).'),
  TALLY_INGEST_MAX_INFLATE_RATIO: z.coerce.number().int().min(1).default(100).describe(
    'API ingest: a compressed body may inflate to at most this many times its size (and 5 MB); 413 beyond, decided while inflating.'),
  TALLY_INGEST_MAX_JSON_DEPTH: z.coerce.number().int().min(2).max(1000).default(32).describe(
    'API ingest: deepest nesting of arrays and objects in a request body; 400 beyond, decided by one linear scan before any parsing.'),
  TALLY_LIVE_MAX_MESSAGE_BYTES: z.coerce.number().int().min(1024).default(65_536).describe(
    'Live feed: largest socket.io message or long-polling POST a client may send (its own messages are a few hundred bytes).'),
  TALLY_LIVE_SOCKETS_PER_TOKEN: z.coerce.number().int().min(1).default(20).describe(
    'Live feed: most open sockets per token per API process; one more is refused (too_many_connections).'),
  TALLY_LIVE_HANDSHAKES_PER_CONNECTION: z.coerce.number().int().min(1).default(5).describe(
    'Live feed: socket.io CONNECT packets one transport connection may send; beyond, the connection is closed before any token lookup.'),
  TALLY_LIVE_JOINS_PER_10S: z.coerce.number().int().min(1).default(20).describe(
    'Live feed: view changes (join, each with a snapshot) per socket per 10 s; a socket that sends as many again beyond that is disconnected.'),
  TALLY_LIVE_SNAPSHOTS_PER_MIN_PER_TOKEN: z.coerce.number().int().min(1).default(300).describe(
    'Live feed: snapshots (connects and joins) per token per minute across its sockets; beyond, joins are refused and connects answered unavailable.'),
  TALLY_HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000).describe(
    'API: longest time to receive a request and answer it (503 after that).'),
  TALLY_INGEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(10_000).describe(
    'API ingest: longest wait for Kafka to acknowledge a request\'s events (connecting included); 503 with Retry-After after that.'),
  TALLY_METRICS_AUTH: z.enum(['loopback', 'token']).default('loopback').describe(
    'API /metrics: loopback = open to loopback clients, admin token from elsewhere; token = admin token always (behind a local reverse proxy).'),
  TALLY_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0).describe(
    'Port for /metrics of the aggregator and sink roles (0: an ephemeral port, logged at start).'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe(
    'pino log level.'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto').describe(
    'Log lines on stderr: json (one object per line), pretty (for reading), auto: pretty when stderr is a terminal, else json.'),
});

export type Env = z.infer<typeof envSchema>;
