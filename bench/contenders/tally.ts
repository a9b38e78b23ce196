/**
 * tally's aggregator as a bench contender: one real `tally aggregator` process on the preloaded
 * topic, timed from process start until its group committed the end of every partition; then,
 * for the restore figure, SIGKILLed and started again on the state it left in Kafka.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchInput } from '../lib/bench-input.js';
import type { ContenderResult } from '../lib/contender-result.js';
import { watchGroup } from '../lib/group-progress.js';
import { fetchMetrics } from '../../test/kit/metrics.js';
import { RoleProcess, roleExited } from '../../test/kit/role-process.js';
import { createSandbox } from '../../test/kit/sandbox.js';
import { sleep, waitUntil } from '../../test/kit/waiting.js';

export type Guarantee = 'exactly_once' | 'at_least_once';

export interface TallyResult extends ContenderResult {
  idsHeld: number;
  bytesPerId: number;
  rssMiB: number;
  restore?: { ids: number; restoreMs: number; killToProcessingMs: number; rssMiB: number };
}

interface LogLine { time: number; msg: string; ms?: number; ids?: number }

function logLines(proc: RoleProcess): LogLine[] {
  return proc.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

/** Reads gauges and counters from the role's own /metrics (its port is in its first log lines). */
export async function readMetrics(proc: RoleProcess, names: string[]): Promise<Record<string, number>> {
  const ports = [...proc.log().matchAll(/"metricsPort":(\d+)/g)];
  if (ports.length === 0) throw new Error(`no metrics port in the ${proc.role} log`);
  return fetchMetrics(`http://127.0.0.1:${ports[ports.length - 1][1]}/metrics`, names);
}

/** Waits for the aggregator's `aggregator.restored` log line: what it restored, how long it took, when. */
export async function waitForRestore(proc: RoleProcess, timeoutMs: number): Promise<{ ids: number; ms: number; time: number }> {
  const restored = () => logLines(proc).find((l) => l.msg === 'aggregator.restored');
  await waitFor('the restore', proc, timeoutMs, () => restored() !== undefined);
  const line = restored() as LogLine;
  return { ids: line.ids ?? NaN, ms: line.ms ?? NaN, time: line.time };
}

const PROFILE_PRELOAD = fileURLToPath(new URL('../lib/cpu-profile-preload.mjs', import.meta.url));

/** Ends the CPU profile the aggregator has taken since its start (bench/lib/cpu-profile-preload.mjs) and waits for its file. */
async function takeProfile(agg: RoleProcess, dir: string): Promise<void> {
  agg.child.kill('SIGUSR2');
  const file = path.join(dir, `${agg.child.pid}.cpuprofile`);
  await waitFor('its CPU profile written', agg, 30_000, () => fs.existsSync(file));
}

/** Polls `probe` every 50 ms; gives up at once if the aggregator exits. */
function waitFor(what: string, proc: RoleProcess, timeoutMs: number, probe: () => Promise<boolean> | boolean): Promise<void> {
  return waitUntil(`${what} (aggregator log ${proc.logFile})`, probe, { timeoutMs, everyMs: 50, abortIf: () => roleExited([proc]) });
}

/**
 * `processes` > 1 runs that many aggregators in one group (tally's scale-out: partitions split
 * between them); memory figures are then the first process's, and no restore is measured.
 */
export async function runTally(
  input: BenchInput, guarantee: Guarantee, opts: { measureRestore: boolean; processes?: number; env?: Record<string, string>; profileDir?: string },
): Promise<TallyResult> {
  const processes = opts.processes ?? 1;
  const sb = await createSandbox(`bench-${guarantee === 'exactly_once' ? 'eos' : 'alo'}`, {
    TALLY_IMPRESSIONS_TOPIC: input.topic,
    TALLY_PARTITIONS: String(input.partitions),
    TALLY_PROCESSING_GUARANTEE: guarantee,
    TALLY_INSTANCE_ID: 'bench-1',
    LOG_LEVEL: 'info',
    ...opts.env,
  });
  const progress = await watchGroup(input.brokers, sb.config.groups.aggregator, input.topic, input.partitions);
  let agg: RoleProcess | undefined;
  const others: RoleProcess[] = [];
  try {
    const t0 = process.hrtime.bigint();
    agg = opts.profileDir === undefined
      ? new RoleProcess('aggregator', sb.env)
      : new RoleProcess('aggregator', { ...sb.env, TALLY_CPU_PROFILE_DIR: opts.profileDir }, [], ['--import', PROFILE_PRELOAD]);
    for (let i = 2; i <= processes; i++) others.push(new RoleProcess('aggregator', { ...sb.env, TALLY_INSTANCE_ID: `bench-${i}` }));
    await waitFor('all offsets committed', agg, 600_000, () => progress.caughtUp().catch(() => false));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (opts.profileDir !== undefined) await takeProfile(agg, opts.profileDir);
    // The aggregator refreshes its gauges (ids held, dedup bytes) at most once a second, at a commit,
    // and they carry no time: only waiting out one period shows values taken after the catch-up.
    await sleep(1_200);
    const m = await readMetrics(agg, ['tally_aggregator_events_counted_total', 'tally_aggregator_duplicates_total', 'tally_aggregator_dedup_ids', 'tally_aggregator_dedup_bytes', 'tally_aggregator_process_resident_memory_bytes']);
    const result: TallyResult = {
      seconds,
      eventsPerSec: input.records / seconds,
      counted: m.tally_aggregator_events_counted_total,
      duplicates: m.tally_aggregator_duplicates_total,
      idsHeld: m.tally_aggregator_dedup_ids,
      bytesPerId: m.tally_aggregator_dedup_bytes / m.tally_aggregator_dedup_ids,
      rssMiB: m.tally_aggregator_process_resident_memory_bytes / 2 ** 20,
      note: `${guarantee}${processes > 1 ? `, ${processes} processes` : ''}`,
    };
    if (processes > 1) {
      const more = await Promise.all(others.map((o) => readMetrics(o, ['tally_aggregator_events_counted_total', 'tally_aggregator_duplicates_total'])));
      for (const x of more) {
        result.counted += x.tally_aggregator_events_counted_total;
        result.duplicates += x.tally_aggregator_duplicates_total;
      }
    }
    if (opts.measureRestore && processes === 1) {
      await agg.kill();
      const killedAt = Date.now();
      agg = new RoleProcess('aggregator', sb.env);
      const restored = await waitForRestore(agg, 120_000);
      const after = await readMetrics(agg, ['tally_aggregator_process_resident_memory_bytes']);
      result.restore = {
        ids: restored.ids,
        restoreMs: restored.ms,
        killToProcessingMs: restored.time - killedAt,
        rssMiB: after.tally_aggregator_process_resident_memory_bytes / 2 ** 20,
      };
    }
    return result;
  } finally {
    await Promise.all([agg?.stop(), ...others.map((o) => o.stop())]);
    progress.close();
    await sb.cleanup();
  }
}
