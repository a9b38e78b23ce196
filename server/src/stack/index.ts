import type { TallyConfig } from '../config/index.js';
import { ensureTopics, fetchMetadata } from '../kafka/index.js';
import { LocalClickHouseReplicas } from './clickhouse-replicas.js';
import { LocalKafkaCluster } from './kafka-cluster.js';
import { tail } from './processes.js';

export { ensureDebianPackage, commandExists, runningPid } from './processes.js';
export { LocalKafkaBroker } from './kafka-broker.js';
export { LocalKafkaCluster } from './kafka-cluster.js';
export { ensureKafkaJars } from './kafka-dist.js';
export { ensureCurrentClickHouse, CurrentClickHouse, CHDB_CORE_VERSION, type CurrentClickHouseOptions } from './current-clickhouse.js';
export { LocalClickHouse } from './clickhouse-server.js';
export { LocalClickHouseReplicas } from './clickhouse-replicas.js';
export { LocalZooKeeper } from './zookeeper-server.js';
export { ensureStackPassword } from './clickhouse-password.js';
export { spawnTally, stopChild, exitOf, isRunning } from './role-process.js';

type Log = (msg: string) => void;

export interface StackStatus {
  kafka: { brokers: string; external: boolean; pids: number[]; up: boolean };
  clickhouse: { url: string; urls: string[]; external: boolean; pids: number[]; up: boolean };
  /** With local replicas: their ZooKeeper. */
  zookeeper?: { address: string; pid?: number; up: boolean };
}

/**
 * Brings up what the config does not point elsewhere: the local broker and ClickHouse, in
 * parallel; then creates the topics. Idempotent: a running server is left as it is.
 * Returns what it started, so a caller (the test harness) can stop exactly that.
 */
export async function stackUp(config: TallyConfig, log: Log): Promise<{ startedKafka: boolean; startedClickHouse: boolean }> {
  const kafka = new LocalKafkaCluster(config);
  const ch = new LocalClickHouseReplicas(config);
  const startedKafka = !config.kafka.external && !kafka.running;
  const startedClickHouse = !config.clickhouse.external && !ch.running;
  const t0 = Date.now();
  await Promise.all([
    config.kafka.external ? Promise.resolve() : kafka.start(log).then(() => log(`kafka up at ${config.kafka.brokers} (pid ${kafka.pids.join(', ')})`)),
    config.clickhouse.external ? Promise.resolve() : ch.start(log).then(() => log(`clickhouse up at ${config.clickhouse.urls.join(', ')} (pid ${ch.pids.join(', ')})`)),
  ]);
  const created = await ensureTopics(config);
  if (created.length > 0) log(`created topics: ${created.join(', ')}`);
  log(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { startedKafka, startedClickHouse };
}

/** Stops the local servers (never external ones). */
export async function stackDown(config: TallyConfig, log: Log, which = { kafka: true, clickhouse: true }): Promise<void> {
  await Promise.all([
    which.kafka && !config.kafka.external ? new LocalKafkaCluster(config).stop().then((s) => log(s ? 'kafka stopped' : 'kafka was not running')) : undefined,
    which.clickhouse && !config.clickhouse.external ? new LocalClickHouseReplicas(config).stop().then((s) => log(s ? 'clickhouse stopped' : 'clickhouse was not running')) : undefined,
  ]);
}

export async function stackStatus(config: TallyConfig): Promise<StackStatus> {
  const kafka = new LocalKafkaCluster(config);
  const ch = new LocalClickHouseReplicas(config);
  const kafkaUp = await fetchMetadata(config.kafka.brokers, 1500).then(() => true, () => false);
  const chUp = await ch.ping();
  const zk = config.clickhouse.external ? undefined : ch.zookeeper;
  return {
    kafka: { brokers: config.kafka.brokers, external: config.kafka.external, pids: kafka.pids, up: kafkaUp },
    clickhouse: { url: config.clickhouse.url, urls: config.clickhouse.urls, external: config.clickhouse.external, pids: ch.pids, up: chUp },
    ...(zk === undefined ? {} : { zookeeper: { address: zk.address, pid: zk.pid, up: await zk.serving() } }),
  };
}

export function stackLogs(config: TallyConfig, lines: number): string {
  const kafka = new LocalKafkaCluster(config);
  const ch = new LocalClickHouseReplicas(config);
  return [...kafka.nodes.map((n) => n.logFile), ...ch.logFiles()]
    .flatMap((f) => [`==> ${f} <==`, tail(f, lines)]).join('\n');
}
