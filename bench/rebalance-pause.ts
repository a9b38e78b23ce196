/**
 * What a process joining the aggregators' group costs the partitions that stay where they are,
 * eager (`range`) against cooperative (`cooperative-sticky`), on the local stack (issue 14).
 *
 * Per strategy, a fresh sandbox: one aggregator counts `state` events first (unique ids: the
 * dedup state a restore reads back; what a rebalance costs grows with it), then owns every
 * partition under steady traffic (fresh ids, ts = now, `rate` a second); then, `joins` times, a
 * second one joins, the group settles, and the second stops again (SIGTERM: it leaves the group,
 * and the first takes its partitions back). The join starts at the
 * second process's `aggregator.started` line (it has just subscribed; its start-up before that is
 * not counted). The partitions that stay are those the first owns before and after the join.
 * Measured from the join until 2 s after the group settled:
 *   staying out   — the longest time the first process did not process its staying partitions,
 *                   from its own log: inside a rebalance event (a revocation's commit, a restore)
 *                   or holding no task for one of them (eager: from its revocation until their
 *                   restore);
 * and from the group's committed offsets and the partitions' ends, sampled every 50 ms
 * (test/kit/commit-progress.ts):
 *   staying stall — the longest a staying partition had records waiting while its committed
 *                   offset stood still: the pause as a reader of committed offsets sees it;
 *   moved stall   — the same for the partitions that moved to the new process;
 *   no rebalance  — the same as the first over an equally long time just before the join: what the
 *                   sampling, the commit interval and the machine's load show without a rebalance.
 * Medians of the joins; every run listed. Figures carry the 50 ms sampling and the commit
 * interval (100 ms): a partition that never pauses shows a stall of about 100–300 ms.
 *
 * Usage: npx tsx bench/rebalance-pause.ts [--joins N] [--rate EVENTS_PER_S] [--state EVENTS]
 */
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { TallyConfig } from '../server/src/config/index.js';
import { DeliveringProducer } from '../server/src/kafka/index.js';
import { generate } from '../server/src/tools/index.js';
import { CommitProgress } from '../test/kit/commit-progress.js';
import { latestPartitions, waitForLog } from '../test/kit/role-logs.js';
import { RoleProcess, roleExited } from '../test/kit/role-process.js';
import { createSandbox } from '../test/kit/sandbox.js';
import { stopStartedStack } from '../test/kit/stack.js';
import { sleep, waitUntil } from '../test/kit/waiting.js';

const STRATEGIES = ['range', 'cooperative-sticky'] as const;
type Strategy = (typeof STRATEGIES)[number];

interface JoinResult {
  stayingOutMs: number;
  stayingStallMs: number;
  movedStallMs: number;
  baselineStallMs: number;
}

/** Fresh valid events stamped now, `rate` a second in 20 ticks, until stopped. */
class SteadyTraffic {
  private stopping = false;
  private running: Promise<void> | undefined;
  private readonly producer: DeliveringProducer;

  constructor(private readonly config: TallyConfig, private readonly rate: number) {
    this.producer = new DeliveringProducer(config.kafka.brokers, { 'client.id': 'rebalance-pause-traffic' });
  }

  async start(): Promise<void> {
    await this.producer.connect();
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    await this.producer.disconnect();
  }

  private async run(): Promise<void> {
    const perTick = Math.max(1, Math.round(this.rate / 20));
    for (let n = 0; !this.stopping; n++) {
      const records = Array.from({ length: perTick }, () => {
        const id = `pause-${crypto.randomBytes(8).toString('hex')}`;
        const value = { impression_id: id, ts: Date.now(), advertiser_id: 'adv-pause', campaign_id: `cmp-${n % 4}`, cost_micros: 1_000 };
        return { topic: this.config.topics.impressions, partition: null, key: id, value: Buffer.from(JSON.stringify(value)) };
      });
      await this.producer.send(records);
      await sleep(50); // pacing the ticks
    }
  }
}

/**
 * The longest time within [from, to] the aggregator did not process all of `staying`: inside the
 * handling of a rebalance event (its partitions_revoked / partitions_assigned line until the
 * tasks_owned line that ends it), or without a task for one of them.
 */
function longestOutOfService(proc: RoleProcess, staying: number[], from: number, to: number): number {
  const spans: Array<[number, number]> = [];
  let eventSince: number | undefined;
  let missingSince: number | undefined;
  for (const text of proc.log().split('\n')) {
    if (!text.startsWith('{')) continue;
    let line: { time: number; msg: string; partitions?: number[] };
    try {
      line = JSON.parse(text) as typeof line;
    } catch {
      continue; // the last line, half written
    }
    if (line.time < from || line.time > to) continue;
    if (line.msg === 'aggregator.partitions_revoked' || line.msg === 'aggregator.partitions_assigned') eventSince ??= line.time;
    if (line.msg !== 'aggregator.tasks_owned') continue;
    if (eventSince !== undefined) spans.push([eventSince, line.time]);
    eventSince = undefined;
    const holdsAll = staying.every((p) => line.partitions?.includes(p));
    if (!holdsAll) missingSince ??= line.time;
    else if (missingSince !== undefined) {
      spans.push([missingSince, line.time]);
      missingSince = undefined;
    }
  }
  spans.sort((a, b) => a[0] - b[0]);
  let longest = 0;
  let current: [number, number] | undefined;
  for (const [start, end] of spans) {
    if (current !== undefined && start <= current[1]) current[1] = Math.max(current[1], end);
    else current = [start, end];
    longest = Math.max(longest, current[1] - current[0]);
  }
  return longest;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function measureStrategy(strategy: Strategy, joins: number, rate: number, state: number, log: (m: string) => void): Promise<JoinResult[]> {
  const sb = await createSandbox(`pause-${strategy}`, { TALLY_ASSIGNMENT_STRATEGY: strategy });
  const all = Array.from({ length: sb.config.partitions }, (_, p) => p);
  const first = new RoleProcess('aggregator', { ...sb.env, TALLY_INSTANCE_ID: 'pause-a' });
  const traffic = new SteadyTraffic(sb.config, rate);
  const progress = new CommitProgress(sb.config, 50);
  const roles = [first];
  const results: JoinResult[] = [];
  const owned = (p: RoleProcess) => latestPartitions(p, 'aggregator.tasks_owned');
  const wait = (what: string, probe: () => boolean | Promise<boolean>) => waitUntil(what, probe, { timeoutMs: 300_000, everyMs: 50, abortIf: () => roleExited(roles) });
  try {
    await progress.start();
    await generate(sb.config, { seed: 1414, count: state, idPrefix: 'pause-state-', duplicates: 0, bad: 0, tooLate: 0, lateWithinHorizon: 0 });
    const loaded = await progress.ends();
    await wait('the state to be counted', () => progress.movedPast(loaded.map((e) => e - 1), all) !== undefined);
    log(`  ${strategy}: ${state.toLocaleString('en')} events of state counted`);
    await traffic.start();
    for (let i = 0; i < joins; i++) {
      const counting = await progress.ends();
      await wait('the first aggregator to own and count every partition', () => owned(first).length === all.length && progress.movedPast(counting, all) !== undefined);
      const before = owned(first);
      const joiner = new RoleProcess('aggregator', { ...sb.env, TALLY_INSTANCE_ID: `pause-b${i}` });
      roles.push(joiner);
      const joinedAt = Number((await waitForLog(joiner, 'aggregator.started', 120_000)).time);
      await wait('the group to settle with both', () => owned(joiner).length > 0 && owned(first).length + owned(joiner).length === all.length);
      const settledAt = Date.now();
      const staying = owned(first).filter((p) => before.includes(p));
      const moved = owned(joiner);
      const ends = await progress.ends();
      await wait('every partition to count again', () => progress.movedPast(ends, all) !== undefined && Date.now() > settledAt + 2_000);
      const until = settledAt + 2_000;
      const result = {
        stayingOutMs: longestOutOfService(first, staying, joinedAt, until),
        stayingStallMs: progress.longestStall(joinedAt, until, staying).ms,
        movedStallMs: progress.longestStall(joinedAt, until, moved).ms,
        baselineStallMs: progress.longestStall(joinedAt - (until - joinedAt), joinedAt, staying).ms,
      };
      results.push(result);
      log(`  ${strategy} join ${i + 1}/${joins}: staying ${staying.join(',')}: not processed ${result.stayingOutMs} ms, longest stall ${result.stayingStallMs} ms (before the join: ${result.baselineStallMs} ms); moved ${moved.join(',')}: ${result.movedStallMs} ms`);
      await joiner.stop();
      roles.pop();
    }
  } finally {
    await Promise.all(roles.map((r) => r.stop()));
    await progress.stop();
    await traffic.stop();
    await sb.cleanup();
  }
  return results;
}

function table(results: Map<Strategy, JoinResult[]>): string {
  const row = (s: Strategy, pick: (r: JoinResult) => number) => {
    const xs = (results.get(s) ?? []).map(pick);
    return `${median(xs).toLocaleString('en')} ms (${xs.map((x) => x.toLocaleString('en')).join(', ')})`;
  };
  const lines = [
    '| strategy | staying partitions not processed (log) | longest stall of a staying partition (offsets) | the same, no rebalance (as long before the join) | longest stall of a moved partition (offsets) |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const s of STRATEGIES) {
    lines.push(`| ${s} | ${row(s, (r) => r.stayingOutMs)} | ${row(s, (r) => r.stayingStallMs)} | ${row(s, (r) => r.baselineStallMs)} | ${row(s, (r) => r.movedStallMs)} |`);
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write('Usage: npx tsx bench/rebalance-pause.ts [--joins N (3)] [--rate EVENTS_PER_S (1000)] [--state EVENTS (500000)]\n'
      + 'The pause a process joining the aggregators\' group causes the partitions that stay, range against cooperative-sticky.\n');
    process.exit(0);
  }
  const arg = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const joins = arg('--joins', 3);
  const rate = arg('--rate', 1_000);
  const state = arg('--state', 500_000);
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const results = new Map<Strategy, JoinResult[]>();
  try {
    for (const s of STRATEGIES) results.set(s, await measureStrategy(s, joins, rate, state, log));
    process.stdout.write(`${table(results)}\n`);
  } finally {
    await stopStartedStack();
  }
}
