/**
 * Failover on a real three-broker KRaft cluster (replication factor 3, min.insync.replicas 2),
 * under steady traffic from the generator, an HTTP ingest client and kcat, with real tally
 * processes: the broker leading most input and state partitions is SIGKILLed (and an aggregator
 * with it), restarted later, then every broker is restarted in turn (an aggregator killed and one
 * added meanwhile). It ends in ClickHouse FINAL == ground truth, the dead letters exactly the
 * generator's malformed records, and measures how long counting stopped: from the kill until the
 * killed leader's input partitions are committed again, and the longest a partition's committed
 * offset stood still during each broker's restart.
 *
 * Runs on the local stack when it is a three-node cluster (TALLY_KAFKA_NODES=3), else on a private
 * one (test/kit/kafka-cluster.ts). The figures go to stderr and test-artifacts/kafka-failover-*.json.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TokenStore } from '../../server/src/auth/index.js';
import { createClickHouse } from '../../server/src/clickhouse/index.js';
import type { LocalKafkaBroker, LocalKafkaCluster } from '../../server/src/stack/index.js';
import { mergeTruth } from '../../server/src/tools/index.js';
import { artifactsDir, createSandbox, useKafkaCluster, waitUntil, type RoleProcess, type Sandbox } from '../kit/harness.js';
import { ClusterView } from '../kit/cluster-view.js';
import { CommitProgress } from '../kit/commit-progress.js';
import { assertExact, Pipeline } from '../kit/pipeline.js';
import { latestPartitions } from '../kit/role-logs.js';
import { roleExited } from '../kit/role-process.js';
import { startApi } from '../integration/api-fixtures.js';
import { GeneratedTraffic, IngestTraffic, KcatTraffic } from './kafka-failover-fixtures.js';

const say = (m: string) => process.stderr.write(`      [failover] ${m}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

describe('Kafka cluster failover under load (three brokers, real processes)', function () {
  this.timeout(600_000);
  let cluster: LocalKafkaCluster;
  let sb: Sandbox;
  let pipeline: Pipeline;
  let api: RoleProcess | undefined;
  let progress: CommitProgress | undefined;
  let generated: GeneratedTraffic | undefined;
  let ingest: IngestTraffic | undefined;
  let kcat: KcatTraffic | undefined;

  afterEach(async function () {
    this.timeout(180_000);
    await Promise.allSettled([generated?.stop(), ingest?.stop(), kcat?.stop()]);
    await progress?.stop();
    await Promise.all([api?.stop(), pipeline?.stopAll()]);
    // A failure half way leaves a broker down: the next test (and run) wants all three.
    for (const node of cluster?.nodes ?? []) if (node.pid === undefined) await node.start(() => undefined);
    await sb?.cleanup();
  });

  it('stays exact through a leader SIGKILL and a rolling restart of all three brokers, aggregators killed and added meanwhile', async () => {
    const under = await useKafkaCluster();
    cluster = under.cluster;
    sb = await createSandbox('failover', under.env);
    const { config } = sb;
    const { impressions, repartition, counts, changelog, dlq } = config.topics;
    const tallyTopics = [impressions, repartition, counts, changelog, dlq];
    const awaitInSync = async (what: string) => {
      let last = '';
      await waitUntil(what, async () => {
        const view = await ClusterView.read(config.kafka.brokers);
        last = view.describeOutOfSync(tallyTopics);
        return view.brokerIds.length === 3 && view.inSync(tallyTopics);
      }, { timeoutMs: 120_000, everyMs: 250 }).catch((err: Error) => assert.fail(`${err.message}; out of sync: ${last}`));
    };
    await awaitInSync('every replica of the sandbox in sync');

    pipeline = new Pipeline(sb);
    const alive = new Set<RoleProcess>([pipeline.startSink()]);
    const start = (instance: string) => {
      const p = pipeline.startAggregator(instance);
      alive.add(p);
      return p;
    };
    const kill = async (p: RoleProcess) => {
      alive.delete(p);
      await p.kill();
    };
    const a = start('agg-a');
    const b = start('agg-b');
    const abortIf = () => roleExited([...alive]);
    const ch = createClickHouse(config);
    const { token } = await TokenStore.forClickHouse(ch, config.clickhouse.database).create('failover ingest', ['ingest']);
    await ch.close();
    const started = await startApi({ ...sb.env, TALLY_INGEST_RATE_LIMIT_PER_MIN: '100000' });
    api = started.api;

    const owned = (p: RoleProcess) => latestPartitions(p, 'aggregator.tasks_owned').length;
    await waitUntil('both aggregators to own partitions, all between them', () => owned(a) > 0 && owned(b) > 0 && owned(a) + owned(b) === config.partitions, { timeoutMs: 60_000, abortIf });
    progress = new CommitProgress(config);
    await progress.start();
    generated = new GeneratedTraffic(config, { prefix: 'fo-g', seed: 1400, rate: 1000, runS: 5 });
    ingest = new IngestTraffic(started.base, token, 'fo-http-');
    kcat = new KcatTraffic(config, 'fo-kcat-');
    const everyPartition = Array.from({ length: config.partitions }, (_, p) => p);
    const counting = progress;
    await waitUntil('every partition counted and committed', () => counting.movedPast(everyPartition.map(() => 0), everyPartition) !== undefined, { timeoutMs: 60_000, abortIf });

    // 1. SIGKILL the broker that leads the most input and state partitions.
    const before = await ClusterView.read(config.kafka.brokers);
    const watched = [impressions, repartition, counts, changelog];
    const victimId = before.brokerIds.reduce((best, id) => (before.ledBy(id, watched).length > before.ledBy(best, watched).length ? id : best));
    const victim = nodeWithId(cluster, victimId);
    const victimInputs = before.partitionsLedBy(victimId, impressions);
    const roles = {
      led: before.ledBy(victimId, watched),
      groupCoordinator: before.coordinatorOf('group', config.groups.aggregator) === victimId,
      transactionCoordinatorOf: ['agg-a', 'agg-b'].filter((i) => before.coordinatorOf('transaction', `${config.groups.aggregator}-${i}`) === victimId),
    };
    say(`killing broker ${victimId}: leads ${roles.led.length} input/state partitions (${roles.led.join(' ')}); group coordinator: ${roles.groupCoordinator}; transaction coordinator of: ${roles.transactionCoordinatorOf.join(', ') || 'none'}`);
    assert.ok(victimInputs.length > 0, `broker ${victimId} leads no partition of ${impressions}`);
    // Counting again: a record produced after the failure counted and committed (the committed offset past the end at the failure).
    const countedAgain = async (what: string, since: number, ends: number[], partitions: number[]) => {
      await waitUntil(what, () => counting.movedPast(ends, partitions) !== undefined, { timeoutMs: 120_000, everyMs: 100, abortIf });
      return (counting.movedPast(ends, partitions) as number) - since;
    };
    const endsAtKill = await counting.ends();
    const killedAt = Date.now();
    process.kill(victim.pid as number, 'SIGKILL');
    const victimCounted = countedAgain(`broker ${victimId}'s input partitions ${victimInputs.join(', ')} counted again`, killedAt, endsAtKill, victimInputs);
    const allCounted = countedAgain('every partition counted again', killedAt, endsAtKill, everyPartition);
    const victimCountingAgain = await victimCounted;
    const allCountingAgain = await allCounted;
    say(`leader kill → its input partitions counted again after ${seconds(victimCountingAgain)}, every partition after ${seconds(allCountingAgain)}`);

    // While it is down: an aggregator SIGKILLed, a new one started.
    const endsAtAggregatorKill = await counting.ends();
    const aggregatorKilledAt = Date.now();
    const countedAfterAggregatorKill = countedAgain('every partition counted again after the aggregator kill', aggregatorKilledAt, endsAtAggregatorKill, everyPartition);
    await kill(a);
    start('agg-c');
    const aggregatorFailover = await countedAfterAggregatorKill;
    say(`aggregator kill (a broker down) → every partition counted again after ${seconds(aggregatorFailover)}`);

    const restartStartedAt = Date.now();
    await victim.start(() => undefined);
    await awaitInSync(`broker ${victimId} back in every ISR`);
    const victimBack = Date.now() - restartStartedAt;
    say(`broker ${victimId} restarted and in sync after ${seconds(victimBack)}`);

    // 2. A rolling restart: each broker stopped (controlled shutdown) and started, the next only once every replica is in sync again.
    // The first restart alone; an aggregator SIGKILLed (back under its id, fencing its zombie) during the second; one joining during the third.
    const meanwhile = ['nothing else', 'an aggregator SIGKILLed and restarted', 'an aggregator joining'];
    const rolling: Array<{ broker: number; meanwhile: string; stopMs: number; startMs: number; inSyncMs: number; longestStallMs: number; stalledPartition: number }> = [];
    for (const [i, node] of cluster.nodes.entries()) {
      const t0 = Date.now();
      await node.stop();
      const stopped = Date.now();
      if (i === 1) {
        await kill(b);
        start('agg-b');
      }
      if (i === 2) start('agg-d');
      await node.start(() => undefined);
      const up = Date.now();
      await awaitInSync(`broker ${node.nodeId} back in every ISR`);
      const inSync = Date.now();
      const stall = counting.longestStall(t0, inSync, everyPartition);
      rolling.push({ broker: node.nodeId, meanwhile: meanwhile[i], stopMs: stopped - t0, startMs: up - stopped, inSyncMs: inSync - up, longestStallMs: stall.ms, stalledPartition: stall.partition });
      say(`rolling restart of broker ${node.nodeId} (${meanwhile[i]}): stop ${seconds(stopped - t0)}, start ${seconds(up - stopped)}, in sync ${seconds(inSync - up)}; longest pause of a partition with records waiting ${seconds(stall.ms)} (partition ${stall.partition})`);
    }

    // 3. Traffic ends; everything sent must be counted exactly once.
    const generatedTruth = await generated.stop();
    await Promise.all([ingest.stop(), kcat.stop()]);
    const truth = mergeTruth(mergeTruth(generatedTruth, await ingest.truth(config)), await kcat.truth(config));
    say(`traffic: ${generated.completedRuns} generator runs, ${truth.counts.sent} records (${ingest.events.length} by HTTP in ${ingest.stats.requests} requests, ${ingest.stats.retried} retried, longest until accepted ${seconds(ingest.stats.longestAcceptMs)}; ${kcat.events.length} by kcat in ${kcat.stats.requests} runs, ${kcat.stats.retried} retried, longest ${seconds(kcat.stats.longestAcceptMs)})`);
    assert.equal(roleExited([...alive]), undefined, 'every role still runs');
    await assertExact(pipeline, truth, { timeoutMs: 240_000 });

    const figures = {
      victim: victimId, ...roles, victimCountingAgainMs: victimCountingAgain, allCountingAgainMs: allCountingAgain,
      aggregatorFailoverMs: aggregatorFailover, victimBackInSyncMs: victimBack, rolling, ingest: ingest.stats, kcat: kcat.stats, records: truth.counts.sent };
    fs.mkdirSync(artifactsDir, { recursive: true });
    fs.writeFileSync(path.join(artifactsDir, `kafka-failover-${Date.now()}.json`), `${JSON.stringify(figures, null, 2)}\n`);
  });
});

function nodeWithId(cluster: LocalKafkaCluster, id: number): LocalKafkaBroker {
  const node = cluster.nodes.find((n) => n.nodeId === id);
  assert.ok(node, `no local node has broker id ${id}`);
  return node;
}
