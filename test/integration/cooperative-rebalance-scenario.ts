/**
 * The cooperative rebalancing scenario (TALLY_ASSIGNMENT_STRATEGY's default), run on the single
 * broker (test/integration/cooperative-rebalance.test.ts) and on the three-broker cluster
 * (test/cluster/cooperative-rebalance.test.ts): under steady traffic, aggregators join, one stops
 * (SIGTERM) and one is SIGKILLed; only the partitions that change owner are restored, every
 * partition that stays with its process keeps its task, and ClickHouse FINAL ends equal to the
 * ground truth.
 */
import assert from 'node:assert/strict';
import { generate } from '../../server/src/tools/index.js';
import { latestPartitions, logLines, waitUntil, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { assertExact, Pipeline } from '../kit/pipeline.js';
import { roleExited } from '../kit/role-process.js';

/** The partitions the aggregator owns now (its latest `aggregator.tasks_owned`). */
export const owned = (p: RoleProcess) => latestPartitions(p, 'aggregator.tasks_owned');

/** Waits up to 60 s for `probe`, polling every `everyMs`; gives up at once if one of `live` exited. */
export const waitWhileAlive = (what: string, probe: () => boolean, live: RoleProcess[], everyMs = 100) =>
  waitUntil(what, probe, { timeoutMs: 60_000, everyMs, abortIf: () => roleExited(live) });

/**
 * Every restore the aggregator logged, with the partitions it owned just before: its log in
 * order, `aggregator.restored` (what was rebuilt) then `aggregator.tasks_owned` (what it holds after).
 */
function restores(p: RoleProcess): Array<{ restored: number[]; ownedBefore: number[] }> {
  const out: Array<{ restored: number[]; ownedBefore: number[] }> = [];
  let holding: number[] = [];
  for (const line of p.log().split('\n')) {
    if (!line.startsWith('{')) continue;
    let parsed: { msg?: string; partitions?: number[] };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      continue; // the last line, half written
    }
    if (parsed.msg === 'aggregator.restored') out.push({ restored: parsed.partitions ?? [], ownedBefore: holding });
    if (parsed.msg === 'aggregator.tasks_owned') holding = parsed.partitions ?? [];
  }
  return out;
}

export async function joinAndLeave(sb: Sandbox, pipeline: Pipeline): Promise<void> {
  const all = Array.from({ length: sb.config.partitions }, (_, p) => p);
  pipeline.startSink();
  const a = pipeline.startAggregator('coop-a');
  // Steady traffic through the joins and into the departures (30 s at 1,500 events/s).
  const producing = generate(sb.config, { seed: 81, count: 45_000, idPrefix: 'coop-', duplicates: 0.1, bad: 12, tooLate: 4, rate: 1_500, durationS: 30 });
  await waitWhileAlive('the first aggregator to own every partition', () => owned(a).length === all.length, [a]);

  // Two more processes join (started together: a process start takes seconds on a loaded
  // machine): they take some partitions each; the first keeps the rest without a restore.
  const b = pipeline.startAggregator('coop-b');
  const c = pipeline.startAggregator('coop-c');
  await waitWhileAlive('the two to take over some partitions each', () => owned(b).length > 0 && owned(c).length > 0
    && owned(a).length + owned(b).length + owned(c).length === all.length, [a, b, c]);
  assert.equal(restores(a).length, 1, 'the first restored nothing after its start');
  for (const joined of [b, c]) {
    assert.deepEqual(restores(joined).flatMap((r) => r.restored).sort((x, y) => x - y), owned(joined), 'a joining process restored exactly what it took');
  }

  // Then one stops cleanly and the other is killed.
  const kept = owned(a);
  const leaving = [...owned(b), ...owned(c)].sort((x, y) => x - y);
  const restoresBefore = restores(a).length;
  assert.equal(await b.stop(), 0, 'SIGTERM: last commit, then exit 0');
  await c.kill();
  // The stopped one leaves the group at once; the killed one once its session (10 s) runs out.
  await waitWhileAlive('the first to own every partition again', () => owned(a).length === all.length, [a]);
  const taken = restores(a).slice(restoresBefore).flatMap((r) => r.restored).sort((x, y) => x - y);
  assert.deepEqual(taken, leaving, `the first restored exactly the partitions of the two that left (it kept ${kept.join(',')})`);

  for (const p of [a, b, c]) {
    for (const { restored, ownedBefore } of restores(p)) {
      assert.deepEqual(restored.filter((x) => ownedBefore.includes(x)), [], `${p.logFile}: restored ${restored.join(',')} while owning ${ownedBefore.join(',')}`);
    }
  }
  assert.deepEqual(logLines(a, 'aggregator.tasks_migrated_restoring'), [], 'no migration of the staying tasks');
  assert.deepEqual(logLines(a, 'aggregator.transaction_failed_restoring'), [], 'no aborted transaction of the staying tasks');
  await assertExact(pipeline, await producing);
}
