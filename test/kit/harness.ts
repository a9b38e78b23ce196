/**
 * The integration tests' view of the real local stack, in one import: the stack started on first
 * use (stack.ts), fresh topics and a fresh database per test (sandbox.ts), tally roles as real
 * child processes (role-process.ts), waits on observable conditions (waiting.ts) and free ports
 * (free-port.ts), and a three-node Kafka cluster to fail brokers of (kafka-cluster.ts). Bench and
 * load tests import the modules they need directly.
 */
export { freePort } from './free-port.js';
export { artifactsDir, RoleProcess } from './role-process.js';
export { createSandbox, type Sandbox } from './sandbox.js';
export { stopStartedStack, useStack } from './stack.js';
export { eventually, sleep, waitUntil } from './waiting.js';
export { latestPartitions, logLines, metricOf, scrapeMetrics, waitForLog, type LogLine } from './role-logs.js';
export { fetchMetrics, metricValue } from './metrics.js';
export { stopStartedCluster, useKafkaCluster, type ClusterUnderTest } from './kafka-cluster.js';
export { stopStartedReplicas, useClickHouseReplicas, type ReplicasUnderTest } from './clickhouse-replicas.js';
