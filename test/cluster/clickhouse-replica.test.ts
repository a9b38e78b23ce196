/**
 * A ClickHouse replica SIGKILLed under load, with real tally processes on two replicas
 * (ReplicatedReplacingMergeTree, insert quorum 2): the API keeps answering from the other replica,
 * the sink's inserts wait for the quorum (nothing acknowledged lives on one replica only), the
 * killed replica comes back and catches up, and both replicas end equal to the ground truth.
 * Measures replica kill → API answering again, and replica back → sink inserting again.
 *
 * Runs on the local stack when it has two replicas (TALLY_CLICKHOUSE_REPLICAS=2), else on a private
 * pair (test/kit/clickhouse-replicas.ts). The figures go to stderr and test-artifacts/clickhouse-replica-*.json.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { verify } from '../../server/src/tools/index.js';
import { artifactsDir, createSandbox, useClickHouseReplicas, waitForLog, waitUntil, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { assertExact, Pipeline } from '../kit/pipeline.js';
import { roleExited } from '../kit/role-process.js';
import { startApi } from '../integration/api-fixtures.js';
import { GeneratedTraffic } from './kafka-failover-fixtures.js';

const say = (m: string) => process.stderr.write(`      [replica] ${m}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** GETs an API read every `everyMs`, keeping when each answer came and whether it was a 200. */
class ApiProbe {
  readonly answers: Array<{ at: number; ok: boolean }> = [];
  private stopping = false;
  private readonly loop: Promise<void>;

  constructor(private readonly url: string, private readonly token: string, private readonly everyMs = 100) {
    this.loop = this.run();
  }

  firstOkAfter(t: number): number | undefined {
    return this.answers.find((a) => a.at > t && a.ok)?.at;
  }

  failedBetween(from: number, to: number): number {
    return this.answers.filter((a) => a.at > from && a.at <= to && !a.ok).length;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const ok = await fetch(this.url, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(10_000) })
        .then(async (r) => { await r.arrayBuffer(); return r.status === 200; }, () => false);
      this.answers.push({ at: Date.now(), ok });
      await new Promise((r) => setTimeout(r, this.everyMs));
    }
  }
}

/** The same config, reading one server only. */
function onlyReplica(config: TallyConfig, url: string): TallyConfig {
  return { ...config, clickhouse: { ...config.clickhouse, url, urls: [url] } };
}

describe('ClickHouse replica failover under load (two replicas, real processes)', function () {
  this.timeout(600_000);
  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess | undefined;
  let probe: ApiProbe | undefined;
  let generated: GeneratedTraffic | undefined;
  let restartKilled: (() => Promise<void>) | undefined;

  afterEach(async function () {
    this.timeout(180_000);
    await Promise.allSettled([generated?.stop(), probe?.stop()]);
    await Promise.all([api?.stop(), pipeline?.stopAll()]);
    // A failure half way leaves a replica down: the next test (and run) wants both.
    await restartKilled?.();
    await sb?.cleanup();
  });

  it('a replica SIGKILLed mid-stream: the API answers from the other, inserts wait for the quorum, the replica catches up; both exact', async () => {
    const { replicas, env } = await useClickHouseReplicas();
    sb = await createSandbox('chreplica', env);
    const { config } = sb;
    const database = config.clickhouse.database;
    pipeline = new Pipeline(sb);
    const sink = pipeline.startSink();
    const alive = [sink, pipeline.startAggregator('agg-a')];
    const abortIf = () => roleExited(alive);
    const ch = createClickHouse(config);
    const { token } = await TokenStore.forClickHouse(ch, database).create('replica probe', ['admin']);
    await ch.close();
    const started = await startApi(sb.env);
    api = started.api;

    generated = new GeneratedTraffic(config, { prefix: 'chr-g', seed: 1600, rate: 1000, runS: 5 });
    const [first, second] = config.clickhouse.urls;
    const rowsOn = async (url: string) => {
      const c = createClickHouse(onlyReplica(config, url), { log: 'off' });
      try {
        return Number((await queryRows<{ n: string }>(c, `SELECT count() AS n FROM ${database}.impression_counts`))[0].n);
      } finally {
        await c.close();
      }
    };
    await waitUntil('rows on both replicas', async () => (await rowsOn(first)) > 0 && (await rowsOn(second)) > 0, { timeoutMs: 60_000, abortIf });
    probe = new ApiProbe(`${started.base}/api/v1/advertisers`, token);
    const answering = probe;
    await waitUntil('the API answering', () => answering.firstOkAfter(0) !== undefined, { timeoutMs: 30_000, abortIf });

    // The replica every role sends to first.
    const victim = replicas.servers[0];
    assert.equal(victim.url, first);
    restartKilled = async () => {
      if (victim.pid === undefined) await victim.start(() => undefined);
    };
    const killedAt = Date.now();
    process.kill(victim.pid as number, 'SIGKILL');
    await waitUntil('the API answering after the kill', () => answering.firstOkAfter(killedAt) !== undefined, { timeoutMs: 60_000, abortIf });
    const apiBackMs = (answering.firstOkAfter(killedAt) as number) - killedAt;
    say(`replica ${victim.replica} killed → the API answered from the other after ${seconds(apiBackMs)}`);
    // Inserts need both replicas: the sink waits (and says so) instead of acknowledging rows one replica holds.
    await waitForLog(sink, 'sink.clickhouse_unavailable', 60_000, (l) => Number(l.time) >= killedAt);
    // Down for a while under traffic: the API keeps answering throughout.
    const downUntil = Date.now() + 8_000;
    await waitUntil('8 s of the replica down', () => Date.now() >= downUntil, { timeoutMs: 20_000, everyMs: 200, abortIf });
    const okWhileDown = answering.answers.filter((a) => a.at > killedAt && a.ok).length;
    const failedWhileDown = answering.failedBetween(killedAt, Date.now());
    say(`while down: ${okWhileDown} API answers, ${failedWhileDown} failed`);
    assert.ok(failedWhileDown <= 2, `the API failed ${failedWhileDown} reads while one replica was down`);

    const restartAt = Date.now();
    await victim.start(() => undefined);
    const upAt = Date.now();
    const recovered = await waitForLog(sink, 'sink.clickhouse_recovered', 120_000, (l) => Number(l.time) >= restartAt);
    const sinkBackMs = Number(recovered.time) - upAt;
    say(`replica ${victim.replica} started in ${seconds(upAt - restartAt)}; the sink inserting again ${seconds(sinkBackMs)} after it answered`);

    const truth = await generated.stop();
    assert.equal(roleExited(alive), undefined, 'every role still runs');
    await assertExact(pipeline, truth, { timeoutMs: 240_000 });
    // Each replica alone holds every row: the restarted one caught up.
    for (const url of config.clickhouse.urls) {
      const result = await verify(onlyReplica(config, url), truth, { timeoutMs: 120_000, stableMs: 2_000 });
      assert.ok(result.ok, `${url} differs from the ground truth: ${JSON.stringify(result.differences.slice(0, 5))}`);
    }
    say(`${truth.counts.sent} records; both replicas equal the ground truth`);

    const figures = { apiBackMs, okWhileDown, failedWhileDown, replicaStartMs: upAt - restartAt, sinkBackMs, records: truth.counts.sent };
    fs.mkdirSync(artifactsDir, { recursive: true });
    fs.writeFileSync(path.join(artifactsDir, `clickhouse-replica-${Date.now()}.json`), `${JSON.stringify(figures, null, 2)}\n`);
  });
});
