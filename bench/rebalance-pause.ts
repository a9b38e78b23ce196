/**
 * What a process joining the aggregators' group costs the partitions that stay where they are,
 * eager (`range`) against cooperative (`cooperative-sticky`), on the local stack (issue 14).
 *
 * Per strategy, a fresh sandbox: one aggregator owns every partition under steady traffic (fresh
 * ids, ts = now, to their home partitions); then, `joins` times, a second one joins, the group
 * settles, and the second stops again (SIGTERM; a static member, so the first takes its partitions
 * back once its 10 s session runs out). The moment of a join is the second process's
 * `aggregator.started` line (it has just subscribed; its start-up before that is not counted).
 * The partitions that stay are those the first owns before and after the join. Measured from the
 * group's committed offsets, sampled every 50 ms (test/kit/commit-progress.ts):
 *   staying resumed — join → every staying partition has committed an offset past its end at the
 *                     join (it counted a record produced after the join): the pause they see;
 *   staying stall   — the longest a staying partition had records waiting while its committed
 *                     offset stood still, from the join until it resumed;
 *   moved resumed   — the same as the first, for the partitions that moved to the new process.
 * Medians of the joins; every run listed. Figures carry the 50 ms sampling and the commit
 * interval (100 ms): a partition that never pauses shows about 100–250 ms.
 *
 * Usage: npx tsx bench/rebalance-pause.ts [--joins N] [--rate EVENTS_PER_S]
 */
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { TallyConfig } from '../server/src/config/index.js';
import { DeliveringProducer } from '../server/src/kafka/index.js';
import { CommitProgress } from '../test/kit/commit-progress.js';
import { latestPartitions, waitForLog } from '../test/kit/role-logs.js';
import { RoleProcess, roleExited } from '../test/kit/role-process.js';
import { createSandbox } from '../test/kit/sandbox.js';
import { stopStartedStack } from '../test/kit/stack.js';
import { sleep, waitUntil } from '../test/kit/waiting.js';

const STRATEGIES = ['range', 'cooperative-sticky'] as const;
type Strategy = (typeof STRATEGIES)[number];

interface JoinResult {
  stayingResumedMs: number;
  stayingStallMs: number;
  movedResumedMs: number;
  staying: number;
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function measureStrategy(strategy: Strategy, joins: number, rate: number, log: (m: string) => void): Promise<JoinResult[]> {
  const sb = await createSandbox(`pause-${strategy}`, { TALLY_ASSIGNMENT_STRATEGY: strategy });
  const all = Array.from({ length: sb.config.partitions }, (_, p) => p);
  const first = new RoleProcess('aggregator', { ...sb.env, TALLY_INSTANCE_ID: 'pause-a' });
  const traffic = new SteadyTraffic(sb.config, rate);
  const progress = new CommitProgress(sb.config, 50);
  const roles = [first];
  const results: JoinResult[] = [];
  try {
    await traffic.start();
    await progress.start();
    for (let i = 0; i < joins; i++) {
      const owned = (p: RoleProcess) => latestPartitions(p, 'aggregator.tasks_owned');
      const wait = (what: string, probe: () => boolean | Promise<boolean>) => waitUntil(what, probe, { timeoutMs: 120_000, everyMs: 50, abortIf: () => roleExited(roles) });
      const counting = await progress.ends();
      await wait('the first aggregator to own and count every partition', () => owned(first).length === all.length && progress.movedPast(counting, all) !== undefined);
      const before = owned(first);
      const joiner = new RoleProcess('aggregator', { ...sb.env, TALLY_INSTANCE_ID: `pause-b${i}` });
      roles.push(joiner);
      const started = await waitForLog(joiner, 'aggregator.started', 120_000);
      const ends = await progress.ends();
      const joinedAt = Number(started.time);
      await wait('the group to settle with both', () => owned(joiner).length > 0 && owned(first).length + owned(joiner).length === all.length);
      const staying = owned(first).filter((p) => before.includes(p));
      const moved = owned(joiner);
      await wait('every partition to count again', () => progress.movedPast(ends, all) !== undefined);
      const stayingResumed = progress.movedPast(ends, staying) as number;
      const result = {
        stayingResumedMs: stayingResumed - joinedAt,
        stayingStallMs: progress.longestStall(joinedAt, stayingResumed, staying).ms,
        movedResumedMs: (progress.movedPast(ends, moved) as number) - joinedAt,
        staying: staying.length,
      };
      results.push(result);
      log(`  ${strategy} join ${i + 1}/${joins}: staying ${staying.join(',')} resumed after ${result.stayingResumedMs} ms (longest stall ${result.stayingStallMs} ms); moved ${moved.join(',')} after ${result.movedResumedMs} ms`);
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
    '| strategy | join → staying partitions counting again | longest stall of a staying partition | join → moved partitions counting again |',
    '| --- | ---: | ---: | ---: |',
  ];
  for (const s of STRATEGIES) lines.push(`| ${s} | ${row(s, (r) => r.stayingResumedMs)} | ${row(s, (r) => r.stayingStallMs)} | ${row(s, (r) => r.movedResumedMs)} |`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write('Usage: npx tsx bench/rebalance-pause.ts [--joins N (3)] [--rate EVENTS_PER_S (1000)]\n'
      + 'The pause a process joining the aggregators\' group causes the partitions that stay, range against cooperative-sticky.\n');
    process.exit(0);
  }
  const arg = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const joins = arg('--joins', 3);
  const rate = arg('--rate', 1_000);
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const results = new Map<Strategy, JoinResult[]>();
  try {
    for (const s of STRATEGIES) results.set(s, await measureStrategy(s, joins, rate, log));
    process.stdout.write(`${table(results)}\n`);
  } finally {
    await stopStartedStack();
  }
}
