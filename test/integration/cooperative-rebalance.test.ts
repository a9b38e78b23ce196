/**
 * Cooperative rebalancing on the real single-broker stack: the scenario of
 * cooperative-rebalance-scenario.ts (aggregators join and leave under traffic; only moved
 * partitions restore; exact totals).
 */
import { pipelinePerTest } from '../kit/pipeline.js';
import { joinAndLeave } from './cooperative-rebalance-scenario.js';

describe('cooperative rebalancing (real Kafka + ClickHouse, real processes)', function () {
  this.timeout(180_000);
  const setUp = pipelinePerTest();

  it('moves only the partitions that change owner: the staying ones are never restored again, and the totals stay exact', async () => {
    const { sb, pipeline } = await setUp('coop');
    await joinAndLeave(sb, pipeline);
  });
});
