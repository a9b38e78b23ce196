/**
 * Cooperative rebalancing on the real single-broker stack: the scenario of
 * cooperative-rebalance-scenario.ts (aggregators join and leave under traffic; only moved
 * partitions restore; exact totals), and a process killed in the middle of a two-round
 * cooperative rebalance.
 */
import assert from 'node:assert/strict';
import { generate } from '../../server/src/tools/index.js';
import { logLines } from '../kit/harness.js';
import { assertExact, pipelinePerTest } from '../kit/pipeline.js';
import { joinAndLeave, owned, waitWhileAlive as wait } from './cooperative-rebalance-scenario.js';

describe('cooperative rebalancing (real Kafka + ClickHouse, real processes)', function () {
  this.timeout(180_000);
  const setUp = pipelinePerTest();

  it('moves only the partitions that change owner: the staying ones are never restored again, and the totals stay exact', async () => {
    const { sb, pipeline } = await setUp('coop');
    await joinAndLeave(sb, pipeline);
  });

  // The partitions a member revokes in the first round are nobody's until it rejoins for the
  // second. Killed in between and restarted under the same id, it must not leave them unowned
  // (as static membership did: the restart got its first-round assignment back, no second round).
  it('leaves no partition unowned when a member is SIGKILLed between its revocation and the second round', async () => {
    const { sb, pipeline } = await setUp('coopkill');
    const { partitions } = sb.config;
    pipeline.startSink();
    let a = pipeline.startAggregator('ck-a');
    await wait('the first aggregator to own every partition', () => owned(a).length === partitions, [a]);
    const producing = generate(sb.config, { seed: 83, count: 20_000, idPrefix: 'ck-', duplicates: 0.1, bad: 6, tooLate: 3, rate: 4_000, durationS: 5 });

    const b = pipeline.startAggregator('ck-b');
    await wait('the first to revoke partitions for the newcomer', () => logLines(a, 'aggregator.partitions_revoked').length > 0, [a, b], 2);
    await a.kill();
    a = pipeline.startAggregator('ck-a');
    await wait('every partition owned again, by one process each', () => {
      const both = [...owned(a), ...owned(b)];
      return both.length === partitions && new Set(both).size === partitions;
    }, [a, b]);
    assert.ok(owned(a).length > 0 && owned(b).length > 0, `both own partitions (${owned(a)} / ${owned(b)})`);

    await assertExact(pipeline, await producing);
  });
});
