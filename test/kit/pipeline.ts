/**
 * The whole pipeline as real processes for the exactness tests: aggregators and a sink as child
 * processes on a sandbox, the ground truth from the generator, and one check that compares
 * ClickHouse (FINAL), the DLQ and the duplicate counts with it.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import { queryFrontier } from '../../server/src/ledger/index.js';
import { formatVerifyReport, readDeadLetters, verify, type GroundTruth } from '../../server/src/tools/index.js';
import { RoleProcess } from './role-process.js';
import { createSandbox, type Sandbox } from './sandbox.js';
import { eventually } from './waiting.js';

export class Pipeline {
  readonly aggregators: RoleProcess[] = [];
  sink: RoleProcess | undefined;
  private nextInstance = 1;

  constructor(readonly sb: Sandbox) {}

  /**
   * Starts an aggregator; `instance` names its transactional id (a restart with the same one fences
   * its zombie); `env` overrides settings for this process only (a restart with other settings).
   */
  startAggregator(instance = `agg-${this.nextInstance++}`, env: Record<string, string> = {}): RoleProcess {
    const p = new RoleProcess('aggregator', { ...this.sb.env, ...env, TALLY_INSTANCE_ID: instance });
    this.aggregators.push(p);
    return p;
  }

  startSink(): RoleProcess {
    this.sink = new RoleProcess('sink', this.sb.env);
    return this.sink;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.aggregators, ...(this.sink ? [this.sink] : [])].map((p) => p.stop()));
  }

  /** Tails of every process log, for a failure message. */
  logs(): string {
    return [...this.aggregators, ...(this.sink ? [this.sink] : [])]
      .map((p) => `--- ${p.role} ${p.logFile}\n${p.log().split('\n').filter((l) => /"level":(4|5|6)0/.test(l)).slice(-8).join('\n')}`)
      .join('\n');
  }
}

/**
 * For a describe block whose tests each run a pipeline: `setUp(name, env)` makes the test's
 * sandbox and pipeline; after each test every process is stopped and the sandbox removed.
 */
export function pipelinePerTest(): (name: string, env?: Record<string, string>) => Promise<{ sb: Sandbox; pipeline: Pipeline }> {
  let current: { sb: Sandbox; pipeline: Pipeline } | undefined;
  afterEach(async function () {
    this.timeout(120_000);
    await current?.pipeline.stopAll();
    await current?.sb.cleanup();
    current = undefined;
  });
  return async (name, env = {}) => {
    const sb = await createSandbox(name, env);
    current = { sb, pipeline: new Pipeline(sb) };
    return current;
  };
}

export interface ExactOptions {
  /** Duplicates the aggregator must have seen in total (default: the truth's duplicatesSent). */
  duplicates?: number;
  timeoutMs?: number;
}

/**
 * The exactness check: ClickHouse FINAL equals the truth per (window, advertiser, campaign),
 * every expected dead letter is on the DLQ with its reason, and the duplicates column adds up.
 */
export async function assertExact(pipeline: Pipeline, truth: GroundTruth, opts: ExactOptions = {}): Promise<void> {
  const { config } = pipeline.sb;
  const result = await verify(config, truth, { timeoutMs: opts.timeoutMs ?? 120_000, stableMs: 2_000 });
  assert.ok(result.ok, `ClickHouse differs from the ground truth:\n${formatVerifyReport(result)}\n${pipeline.logs()}`);
  // Dead letters and duplicates leave the counts alone: ClickHouse can equal the truth before the
  // last of them is judged, so both are awaited (then compared once more for the message).
  const expectedDlq = sortKeys(Object.fromEntries(Object.entries(truth.deadLetters).filter(([, n]) => n > 0)));
  const expectedDuplicates = opts.duplicates ?? truth.counts.duplicatesSent;
  const ch = createClickHouse(config);
  try {
    const duplicates = async () => Number((await queryRows<{ d: string }>(ch, `SELECT sum(duplicates) AS d FROM ${config.clickhouse.database}.impression_counts FINAL`))[0].d);
    const dlq = async () => sortKeys(await readDeadLetters(config, { timeoutMs: 30_000 }));
    await eventually('dead letters and duplicates as expected', async () =>
      JSON.stringify(await dlq()) === JSON.stringify(expectedDlq) && (await duplicates()) === expectedDuplicates, 60_000).catch(() => undefined);
    assert.deepEqual(await dlq(), expectedDlq, 'dead letters by reason');
    assert.equal(await duplicates(), expectedDuplicates, 'duplicates removed');
  } finally {
    await ch.close();
  }
}

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

export function randomBetween(lo: number, hi: number): number {
  return lo + Math.random() * (hi - lo);
}

/**
 * Produces one impression stamped "now" for a clock advertiser outside every truth (so verify
 * ignores it) every `everyMs` until `done()` holds: event time moves with traffic only.
 */
export async function tickUntil(config: TallyConfig, what: string, done: () => Promise<boolean>, timeoutMs = 120_000, everyMs = 500): Promise<void> {
  const producer = new DeliveringProducer(config.kafka.brokers, { 'client.id': 'clock' });
  await producer.connect();
  let n = 0;
  try {
    await eventually(what, async () => {
      const tick = { impression_id: `clock-${crypto.randomBytes(6).toString('hex')}-${n++}`, ts: Date.now(), advertiser_id: 'clock', campaign_id: 'clock', cost_micros: 0 };
      await producer.send([{ topic: config.topics.impressions, partition: null, key: tick.impression_id, value: Buffer.from(JSON.stringify(tick)) }]);
      return done();
    }, timeoutMs, everyMs);
  } finally {
    await producer.disconnect();
  }
}

/** Moves event time until every hour before `before` is final (closed in every partition). */
export async function awaitFinal(config: TallyConfig, before: number, timeoutMs = 120_000): Promise<void> {
  const ch = createClickHouse(config);
  try {
    await tickUntil(config, `every period before ${new Date(before).toISOString()} final`, async () => {
      const f = await queryFrontier(ch, config.clickhouse.database, config.partitions);
      return f.finalBefore !== null && f.finalBefore >= before;
    }, timeoutMs);
  } finally {
    await ch.close();
  }
}
