/**
 * Cooperative rebalancing on the three-broker cluster (the harness stack when it is one, else a
 * private one): the scenario of test/integration/cooperative-rebalance-scenario.ts, with the
 * group, transaction coordinators and partition leaders spread over three brokers.
 */
import { createSandbox, useKafkaCluster, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';
import { joinAndLeave } from '../integration/cooperative-rebalance-scenario.js';

describe('cooperative rebalancing on a three-broker cluster (real processes)', function () {
  this.timeout(240_000);
  let sb: Sandbox;
  let pipeline: Pipeline;

  afterEach(async function () {
    this.timeout(120_000);
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  it('moves only the partitions that change owner, and the totals stay exact', async () => {
    const under = await useKafkaCluster();
    sb = await createSandbox('coopcluster', under.env);
    pipeline = new Pipeline(sb);
    await joinAndLeave(sb, pipeline);
  });
});
