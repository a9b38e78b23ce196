/**
 * TALLY_STREAM_THREADS=2: one `tally aggregator` with two workers, each with its own consumer and
 * transactional producer. The group spreads the partitions over both; a worker SIGKILLed is
 * replaced under its transactional id; the primary's /metrics sums the workers; the whole
 * aggregator SIGKILLed leaves no worker behind; and every run ends exact.
 */
import assert from 'node:assert/strict';
import { generate } from '../../server/src/tools/index.js';
import { eventually, logLines, sleep, type LogLine, type RoleProcess } from '../kit/harness.js';
import { assertExact, pipelinePerTest, randomBetween } from '../kit/pipeline.js';
import { metricOf } from '../kit/role-logs.js';

const THREADS = { TALLY_STREAM_THREADS: '2' };

/** The partitions each worker owns after its latest rebalance, by thread index. */
function ownedByThread(agg: RoleProcess): Map<number, number[]> {
  const owned = new Map<number, number[]>();
  for (const l of logLines(agg, 'aggregator.tasks_owned')) owned.set(Number(l.thread), (l.partitions as number[] | undefined) ?? []);
  return owned;
}

/** Pids of the workers the aggregator started, latest per thread. */
function workerPids(agg: RoleProcess): number[] {
  const pids = new Map<number, number>();
  for (const l of logLines(agg, 'aggregator.thread_started')) pids.set(Number(l.thread), Number(l.pid));
  return [...pids.values()];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('stream threads: two workers in one aggregator (real Kafka + ClickHouse)', function () {
  this.timeout(600_000);
  const setUp = pipelinePerTest();

  it('spreads the partitions over both, replaces a worker SIGKILLed, sums their metrics, and is exact', async () => {
    const { sb, pipeline } = await setUp('threads', THREADS);
    pipeline.startSink();
    const agg = pipeline.startAggregator('st');
    const { partitions } = sb.config;
    await eventually('both workers to own partitions, all of them between them', async () => {
      const owned = ownedByThread(agg);
      const all = [...owned.values()].flat();
      return owned.size === 2 && [...owned.values()].every((p) => p.length > 0) && new Set(all).size === partitions && all.length === partitions;
    }, 60_000, 100);

    const producing = generate(sb.config, { seed: 31, count: 40_000, idPrefix: 'st-', duplicates: 0.1, bad: 12, tooLate: 5, lateWithinHorizon: 20, rate: 10_000, durationS: 4 });
    await eventually('both workers counting', async () => (await metricOf(agg, 'tally_aggregator_events_counted_total')) > 0, 60_000, 100);
    const startedBefore = logLines(agg, 'aggregator.thread_started').length;
    const victim = logLines(agg, 'aggregator.thread_started').find((l: LogLine) => l.thread === 1);
    assert.ok(victim, 'worker 1 started');
    process.kill(Number(victim.pid), 'SIGKILL');
    await eventually('worker 1 replaced', async () => logLines(agg, 'aggregator.thread_replaced').some((l) => l.thread === 1)
      && logLines(agg, 'aggregator.thread_started').length > startedBefore, 30_000, 100);
    const replacement = logLines(agg, 'aggregator.thread_started').at(-1) as LogLine;
    assert.equal(replacement.instanceId, 'st-1', 'the replacement takes the same transactional id (fencing its predecessor)');

    const truth = await producing;
    await assertExact(pipeline, truth);
    assert.equal(await metricOf(agg, 'tally_aggregator_stream_threads'), 2);
    assert.equal(await metricOf(agg, 'tally_aggregator_partitions_assigned'), partitions, 'the workers\' gauges summed');
    assert.ok(agg.alive, 'the aggregator survived its worker');
  });

  it('stays exact when the whole aggregator is SIGKILLed at random moments, and leaves no worker behind', async () => {
    const { sb, pipeline } = await setUp('threadskill', THREADS);
    pipeline.startSink();
    let agg = pipeline.startAggregator('stk');
    const producing = generate(sb.config, { seed: 32, count: 50_000, idPrefix: 'stk-', duplicates: 0.1, bad: 15, tooLate: 6, lateWithinHorizon: 30, rate: 5_000, durationS: 10 });
    let done = false;
    void producing.finally(() => { done = true; });
    let kills = 0;
    while (kills < 4 && (!done || kills < 3)) {
      const current = agg;
      await eventually('the workers started', async () => workerPids(current).length === 2, 30_000, 50);
      await sleep(randomBetween(1_500, 4_000)); // fault injection at a random moment
      const pids = workerPids(agg);
      await agg.kill();
      kills++;
      await eventually('its workers gone with it', async () => pids.every((p) => !alive(p)), 10_000, 50)
        .catch(() => assert.fail(`workers ${pids.filter(alive).join(', ')} outlived their aggregator`));
      agg = pipeline.startAggregator('stk');
    }
    const truth = await producing;
    assert.ok(kills >= 3, `killed ${kills} times`);
    await assertExact(pipeline, truth, { timeoutMs: 240_000 });
  });
});
