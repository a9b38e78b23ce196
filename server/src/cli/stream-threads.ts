/**
 * TALLY_STREAM_THREADS (Kafka Streams' num.stream.threads) for `tally aggregator`: N workers in
 * one aggregator, each with its own consumer, transactional producer and tasks, the partitions
 * spread across them by the consumer group like across processes.
 *
 * The workers are processes (node:cluster), not worker_threads: node-rdkafka's native addon is
 * not context-aware (NODE_MODULE), so it loads in the main thread of a process only ("Module did
 * not self-register" in a worker thread). What a Kafka Streams thread gives holds all the same:
 * worker i has the transactional id <instance>-<i>, so a replacement fences its predecessor; a
 * worker that dies is replaced (REPLACE_THREAD); the primary serves one /metrics summed over the
 * workers (prom-client's AggregatorRegistry) and stops them all on SIGTERM. A worker exits at once
 * when the primary is gone (its IPC channel closes): no orphan keeps counting.
 */
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import type { TallyConfig } from '../config/index.js';
import { serveMetrics, type Logger } from '../observability/index.js';
import { stopOnSignals } from './stop-signals.js';

/** Set by the primary in each worker's environment: which worker it is. */
const THREAD_ENV = 'TALLY_STREAM_THREAD';
/** A replacement waits this long, so a worker failing at start does not spin. */
const REPLACE_DELAY_MS = 1_000;
const STOP_GRACE_MS = 60_000;

/** In a worker: its index, else undefined. */
export function streamThreadIndex(): number | undefined {
  const v = process.env[THREAD_ENV];
  return cluster.isWorker && v !== undefined ? Number(v) : undefined;
}

/** In a worker: exit when the primary is gone, and hand the worker's registry to the primary's /metrics. */
export function joinStreamThreads(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one is what makes prom-client answer the primary's requests in a worker.
  new AggregatorRegistry();
  process.on('disconnect', () => process.exit(1));
}

/** The primary: forks the workers, replaces the ones that die, serves their metrics, stops them on SIGTERM. Resolves once all have exited after a stop. */
export async function runStreamThreads(config: TallyConfig, log: Logger): Promise<void> {
  const count = config.streamThreads;
  const aggregated = new AggregatorRegistry();
  const own = new Registry();
  const running = new Gauge({ name: 'tally_aggregator_stream_threads', help: 'Stream threads (worker processes) running in this aggregator', registers: [own] });
  const workers = new Map<number, Worker>();
  let stopping = false;

  const fork = (i: number) => {
    const instanceId = `${config.instanceId}-${i}`;
    const w = cluster.fork({ [THREAD_ENV]: String(i), TALLY_INSTANCE_ID: instanceId });
    workers.set(i, w);
    running.set(workers.size);
    log.info({ thread: i, pid: w.process.pid, instanceId }, 'aggregator.thread_started');
  };
  let allExited!: () => void;
  const ended = new Promise<void>((resolve) => { allExited = resolve; });
  cluster.on('exit', (w, code, signal) => {
    const i = [...workers].find(([, x]) => x === w)?.[0];
    if (i === undefined) return;
    workers.delete(i);
    running.set(workers.size);
    if (stopping) {
      log.info({ thread: i, code, signal }, 'aggregator.thread_stopped');
      if (workers.size === 0) allExited();
      return;
    }
    log.warn({ thread: i, code, signal }, 'aggregator.thread_replaced');
    setTimeout(() => { if (!stopping) fork(i); }, REPLACE_DELAY_MS);
  });

  const metrics = await serveMetrics({
    contentType: aggregated.contentType,
    metrics: async () => `${await aggregated.clusterMetrics()}\n${await own.metrics()}`,
  }, config.http.host, config.metricsPort);
  log.info({ metricsPort: metrics.port, instanceId: config.instanceId, threads: count }, 'aggregator.metrics_listening');
  stopOnSignals(log, 'aggregator.stopping', () => {
    stopping = true;
    if (workers.size === 0) return allExited();
    for (const w of workers.values()) w.process.kill('SIGTERM');
    setTimeout(() => { for (const w of workers.values()) w.process.kill('SIGKILL'); }, STOP_GRACE_MS).unref();
  });
  for (let i = 0; i < count; i++) fork(i);
  try {
    await ended;
  } finally {
    await metrics.close();
  }
}
