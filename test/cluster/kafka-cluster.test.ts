/**
 * The three-node KRaft cluster (test/kit/kafka-cluster.ts): tally's topics replicated as the docs
 * say, on the local stack and on an existing cluster, and the clients that only query a partition
 * (a restore's high watermarks, the pipeline status) following its leader to another broker when
 * the one they asked dies. The failover under load is kafka-failover.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { restorePartitions } from '../../server/src/aggregator/restore.js';
import { windowSettingsOf } from '../../server/src/aggregator/window-settings.js';
import { loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { Consumer, deleteTopics, ensureTopics } from '../../server/src/kafka/index.js';
import { ensureKafkaJars, type LocalKafkaCluster } from '../../server/src/stack/index.js';
import { ClusterView } from '../kit/cluster-view.js';
import { produceEvents, spreadEvents } from '../kit/hand-events.js';
import { createSandbox, metricOf, useKafkaCluster, waitUntil, type Sandbox } from '../kit/harness.js';
import { Pipeline } from '../kit/pipeline.js';

/** `kafka-topics --describe` of `topics`, in one run of the tool (a JVM start each is seconds). */
function describeTopics(config: TallyConfig, topics: string[]): string {
  const libs = ensureKafkaJars(config.cacheDir, () => undefined);
  const bootstrap = config.kafka.brokers.split(',')[0];
  const r = spawnSync('java', ['-cp', `${libs}/*`, 'org.apache.kafka.tools.TopicCommand', '--bootstrap-server', bootstrap, '--describe', '--topic', topics.map(escapeRegExp).join('|')], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

/** The topic's summary line in describeTopics' output must match `settings`. */
function assertTopicLine(described: string, topic: string, settings: RegExp): void {
  const line = described.split('\n').find((l) => l.startsWith(`Topic: ${topic}\t`));
  assert.ok(line, `${topic} not described:\n${described}`);
  assert.match(line, settings, topic);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('local stack: a three-node Kafka cluster', function () {
  this.timeout(240_000);
  let cluster: LocalKafkaCluster;
  let sb: Sandbox | undefined;
  let pipeline: Pipeline | undefined;

  beforeEach(async () => {
    const under = await useKafkaCluster();
    cluster = under.cluster;
    sb = await createSandbox('cluster', under.env);
  });

  afterEach(async function () {
    this.timeout(120_000);
    await pipeline?.stopAll();
    for (const node of cluster?.nodes ?? []) if (node.pid === undefined) await node.start(() => undefined);
    await sb?.cleanup();
  });

  it('gives every tally topic replication factor 3 and min.insync.replicas 2', () => {
    const { config } = sb as Sandbox;
    const topics = Object.values(config.topics);
    const described = describeTopics(config, topics);
    for (const topic of topics) assertTopicLine(described, topic, /ReplicationFactor: 3\s+Configs: .*min\.insync\.replicas=2/);
  });

  it('on an existing cluster (KAFKA_BROKERS) creates the topics with the brokers\' default replication factor', async () => {
    const local = (sb as Sandbox).config;
    const existing = loadConfig({ ...process.env, KAFKA_BROKERS: local.kafka.brokers, TALLY_TOPIC_PREFIX: `t-existing-${crypto.randomBytes(3).toString('hex')}.` });
    const created = await ensureTopics(existing);
    try {
      assert.equal(created.length, Object.keys(existing.topics).length);
      // The local cluster's brokers default to 3 replicas (and min.insync.replicas 2, a broker setting here).
      const described = describeTopics(existing, created);
      for (const topic of created) assertTopicLine(described, topic, /ReplicationFactor: 3\s+Configs: /);
    } finally {
      await deleteTopics(existing.kafka.brokers, created);
    }
  });

  it('a restore and a client that only queries follow a state partition to its new leader when the old one is SIGKILLed', async () => {
    const { config } = sb as Sandbox;
    pipeline = new Pipeline(sb as Sandbox);
    const aggregator = pipeline.startAggregator('agg-1');
    const events = spreadEvents('clu-', 2_000, Date.now() - 120_000, Date.now());
    await produceEvents(config, events);
    await waitUntil('every event counted', async () => (await metricOf(aggregator, 'tally_aggregator_events_counted_total')) === events.length, { timeoutMs: 60_000 });
    assert.equal(await aggregator.stop(), 0, 'SIGTERM: the last transaction committed');

    const { counts } = config.topics;
    const view = await ClusterView.read(config.kafka.brokers);
    const leader = view.partitions([counts]).find((p) => p.partition.id === 0)?.partition.leader as number;
    const node = cluster.nodes.find((n) => n.nodeId === leader);
    assert.ok(node?.pid, `broker ${leader}, leader of ${counts}:0, runs locally`);
    // A client that asked the old leader before it died, as the pipeline status's does.
    const querying = new Consumer({ brokers: config.kafka.brokers, groupId: `t-query-${crypto.randomUUID()}`, isolation: 'read_uncommitted' });
    await querying.connect();
    try {
      const end = (await querying.queryWatermarkOffsets(counts, 0, 5_000)).highOffset;
      process.kill(node.pid, 'SIGKILL');
      // At once, before KRaft has fenced the dead broker and elected new leaders (about 9 s).
      const restored = await restorePartitions(config, windowSettingsOf(config), Array.from({ length: config.partitions }, (_, p) => p));
      assert.equal(restored.stats.ids, events.length, 'every counted id restored');
      await waitUntil(`the querying client answered by ${counts}:0's new leader`, async () => (await querying.queryWatermarkOffsets(counts, 0, 2_000)).highOffset === end, { timeoutMs: 30_000, everyMs: 250 });
    } finally {
      await querying.disconnect();
      await node.start(() => undefined);
    }
    await waitUntil('every replica in sync again', async () => (await ClusterView.read(config.kafka.brokers)).inSync(Object.values(config.topics)), { timeoutMs: 120_000 });
  });
});
