/**
 * Two ClickHouse replicas with a ZooKeeper for the cluster tests to kill one of: the harness
 * stack itself when it has them (TALLY_CLICKHOUSE_REPLICAS=2 on the local stack), else a private
 * pair started on first use (free ports, a temporary directory) and stopped when the run ends.
 * Kafka is always the harness stack's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLICKHOUSE_REPLICA_PORT_STEP, loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { LocalClickHouseReplicas } from '../../server/src/stack/index.js';
import { freePorts } from './free-port.js';
import { useStack } from './stack.js';

export interface ReplicasUnderTest {
  replicas: LocalClickHouseReplicas;
  /** Overrides for createSandbox that put the sandbox's database (and its roles) on these replicas. */
  env: Record<string, string>;
}

let privateReplicas: Promise<{ under: ReplicasUnderTest; dir: string }> | undefined;

const log = (m: string) => process.stderr.write(`      [replicas] ${m}\n`);

export async function useClickHouseReplicas(): Promise<ReplicasUnderTest> {
  const config = await useStack();
  if (config.clickhouse.replicas === 2 && !config.clickhouse.external) return { replicas: new LocalClickHouseReplicas(config), env: {} };
  privateReplicas ??= startPrivateReplicas(config);
  return (await privateReplicas).under;
}

export async function stopStartedReplicas(): Promise<void> {
  if (!privateReplicas) return;
  const started = await privateReplicas.catch(() => undefined);
  privateReplicas = undefined;
  if (started === undefined) return;
  await started.under.replicas.stop();
  fs.rmSync(started.dir, { recursive: true, force: true });
}

async function startPrivateReplicas(harness: TallyConfig): Promise<{ under: ReplicasUnderTest; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-replicas-'));
  // Replica i uses base + 100·i for HTTP and native, base + 100·i + 9 to replicate.
  const [http, tcp, zookeeper] = await freePorts(3, (p) => [p, p + CLICKHOUSE_REPLICA_PORT_STEP, p + 9, p + CLICKHOUSE_REPLICA_PORT_STEP + 9]);
  const env = {
    TALLY_STACK_DIR: dir, TALLY_CLICKHOUSE_REPLICAS: '2', KAFKA_BROKERS: harness.kafka.brokers,
    TALLY_CLICKHOUSE_HTTP_PORT: String(http), TALLY_CLICKHOUSE_TCP_PORT: String(tcp), TALLY_ZOOKEEPER_PORT: String(zookeeper),
  };
  const config = loadConfig({ ...process.env, CLICKHOUSE_URL: undefined, CLICKHOUSE_PASSWORD: undefined, ...env });
  const replicas = new LocalClickHouseReplicas(config);
  const t0 = Date.now();
  await replicas.start(log);
  log(`private replicas up at ${config.clickhouse.urls.join(', ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { under: { replicas, env }, dir };
}
