/**
 * The three-node Kafka cluster the cluster tests stop and kill brokers of: the harness stack itself
 * when it is one (TALLY_KAFKA_NODES=3 on the local stack), else a private cluster started on first
 * use (free ports, a temporary directory, the same cached jars) and stopped when the run ends.
 * ClickHouse is always the harness stack's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KAFKA_NODE_PORT_STEP, loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { LocalKafkaCluster } from '../../server/src/stack/index.js';
import { freePorts } from './free-port.js';
import { useStack } from './stack.js';

export interface ClusterUnderTest {
  /** The nodes, to stop, kill and start one by one. */
  cluster: LocalKafkaCluster;
  /** Overrides for createSandbox that put the sandbox's topics (and its roles) on this cluster. */
  env: Record<string, string>;
}

let privateCluster: Promise<{ under: ClusterUnderTest; dir: string }> | undefined;

const log = (m: string) => process.stderr.write(`      [cluster] ${m}\n`);

/** The cluster for this run (the harness stack comes up first: the sandboxes need its ClickHouse). */
export async function useKafkaCluster(): Promise<ClusterUnderTest> {
  const config = await useStack();
  if (config.kafka.nodes === 3 && !config.kafka.external) return { cluster: new LocalKafkaCluster(config), env: {} };
  privateCluster ??= startPrivateCluster();
  return (await privateCluster).under;
}

/** Stops the private cluster, if this run started one. */
export async function stopStartedCluster(): Promise<void> {
  if (!privateCluster) return;
  const started = await privateCluster.catch(() => undefined);
  privateCluster = undefined;
  if (started === undefined) return;
  await started.under.cluster.stop();
  fs.rmSync(started.dir, { recursive: true, force: true });
}

async function startPrivateCluster(): Promise<{ under: ClusterUnderTest; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-cluster-'));
  const [port, controllerPort] = await freePorts(2, nodePorts);
  const env = { TALLY_KAFKA_NODES: '3', TALLY_KAFKA_PORT: String(port), TALLY_KAFKA_CONTROLLER_PORT: String(controllerPort) };
  // Only the cluster's own files go to the temporary directory: the sandboxes keep the harness's
  // TALLY_STACK_DIR, where its ClickHouse password is.
  const clusterConfig: TallyConfig = loadConfig({ ...process.env, ...env, TALLY_STACK_DIR: dir, KAFKA_BROKERS: undefined });
  const cluster = new LocalKafkaCluster(clusterConfig);
  const t0 = Date.now();
  await cluster.start(log);
  log(`private three-node cluster up at ${clusterConfig.kafka.brokers} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { under: { cluster, env }, dir };
}

function nodePorts(base: number): number[] {
  return [0, 1, 2].map((i) => base + KAFKA_NODE_PORT_STEP * i);
}
