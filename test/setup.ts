// Root hooks for every mocha run. Integration tests start the local stack on first use
// (test/kit/harness.ts), the cluster tests a private Kafka cluster or ClickHouse replica pair when
// the stack is not one (test/kit/kafka-cluster.ts, clickhouse-replicas.ts); this stops what they
// started once the run ends.
import { stopStartedCluster, stopStartedReplicas, stopStartedStack } from './kit/harness.js';

export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(120_000);
    await Promise.all([stopStartedStack(), stopStartedCluster(), stopStartedReplicas()]);
  },
};
