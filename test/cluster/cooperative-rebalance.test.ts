/**
 * Cooperative rebalancing on the three-broker cluster (the harness stack when it is one, else a
 * private one): the scenario of test/integration/cooperative-rebalance-scenario.ts, with the
 * group, transaction coordinators and partition leaders spread over three brokers.
 */
import { useKafkaCluster } from '../kit/harness.js';
import { pipelinePerTest } from '../kit/pipeline.js';
import { joinAndLeave } from '../integration/cooperative-rebalance-scenario.js';

describe('cooperative rebalancing on a three-broker cluster (real processes)', function () {
  this.timeout(240_000);
  const setUp = pipelinePerTest();

  it('moves only the partitions that change owner, and the totals stay exact', async () => {
    const under = await useKafkaCluster();
    const { sb, pipeline } = await setUp('coopcluster', under.env);
    await joinAndLeave(sb, pipeline);
  });
});
