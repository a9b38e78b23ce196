/**
 * Cooperative rebalancing on the real single-broker stack: the scenario of
 * cooperative-rebalance-scenario.ts (aggregators join and leave under traffic; only moved
 * partitions restore; exact totals).
 */
import { createSandbox, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';
import { joinAndLeave } from './cooperative-rebalance-scenario.js';

describe('cooperative rebalancing (real Kafka + ClickHouse, real processes)', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  let pipeline: Pipeline;

  afterEach(async function () {
    this.timeout(120_000);
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  it('moves only the partitions that change owner: the staying ones are never restored again, and the totals stay exact', async () => {
    sb = await createSandbox('coop');
    pipeline = new Pipeline(sb);
    await joinAndLeave(sb, pipeline);
  });
});
