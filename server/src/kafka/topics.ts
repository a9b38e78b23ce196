import Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { ConfigError, kafkaError } from '../errors/index.js';
import { fetchMetadata } from './metadata.js';

const { ERR_TOPIC_ALREADY_EXISTS } = Kafka.CODES.ERRORS;

/**
 * Replicas of every tally topic: the local stack's node count (3 nodes: 3 replicas, 2 of which must
 * acknowledge an acks=all write); on an existing cluster (KAFKA_BROKERS) -1, the brokers'
 * `default.replication.factor`, with their `min.insync.replicas`, as Kafka Streams' replication.factor
 * does: tally cannot know how many brokers a cluster has, and one replica there would lose data.
 */
function topicReplication(config: TallyConfig): { replicationFactor: number; config: Record<string, string> } {
  if (config.kafka.external) return { replicationFactor: -1, config: {} };
  const replicationFactor = Math.min(3, config.kafka.nodes);
  return { replicationFactor, config: replicationFactor >= 3 ? { 'min.insync.replicas': '2' } : {} };
}

/** tally's topics with their configs. All are keyed like impressions: same partition count. */
export function topicSpecs(config: TallyConfig): Kafka.NewTopic[] {
  const { topics, partitions } = config;
  const { replicationFactor: replication_factor, config: durability } = topicReplication(config);
  const compact = { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '0', 'segment.ms': '600000' };
  return [
    { topic: topics.impressions, num_partitions: partitions, replication_factor, config: { 'retention.ms': String(7 * 86_400_000), ...durability } },
    { topic: topics.counts, num_partitions: partitions, replication_factor, config: { ...compact, ...durability } },
    { topic: topics.changelog, num_partitions: partitions, replication_factor, config: { ...compact, ...durability } },
    { topic: topics.dlq, num_partitions: partitions, replication_factor, config: { 'retention.ms': String(30 * 86_400_000), ...durability } },
    // Internal, read by the aggregator like its input: kept as long as the input is.
    { topic: topics.repartition, num_partitions: partitions, replication_factor, config: { 'retention.ms': String(7 * 86_400_000), ...durability } },
  ];
}

/**
 * Creates the topics that do not exist yet (idempotent) and returns their names. Refuses topics
 * that exist with another partition count than TALLY_PARTITIONS: home partitions, and so dedup,
 * depend on it once data flows.
 */
export async function ensureTopics(config: TallyConfig): Promise<string[]> {
  const md = await fetchMetadata(config.kafka.brokers, 10_000);
  const existing = new Map(md.topics.map((t) => [t.name, t.partitions.length]));
  for (const spec of topicSpecs(config)) {
    const n = existing.get(spec.topic);
    if (n !== undefined && n !== spec.num_partitions) {
      throw new ConfigError(`TALLY_PARTITIONS=${spec.num_partitions}, but topic ${spec.topic} exists with ${n} partitions; `
        + `the partition count cannot change once data flows. Set TALLY_PARTITIONS=${n}, or use new topics (TALLY_TOPIC_PREFIX).`);
    }
  }
  const missing = topicSpecs(config).filter((t) => !existing.has(t.topic));
  if (missing.length === 0) return [];
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': config.kafka.brokers, log_level: 0 });
  try {
    for (const spec of missing) {
      await new Promise<void>((resolve, reject) => {
        admin.createTopic(spec, 15_000, (err) => (err && err.code !== ERR_TOPIC_ALREADY_EXISTS ? reject(kafkaError(`create topic ${spec.topic}`, err)) : resolve()));
      });
    }
  } finally {
    admin.disconnect();
  }
  return missing.map((t) => t.topic);
}

/** Deletes the topics, ignoring failures (tests clean up after themselves). */
export async function deleteTopics(brokers: string, names: string[]): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, log_level: 0 });
  try {
    for (const name of names) {
      await new Promise<void>((resolve) => admin.deleteTopic(name, 15_000, () => resolve()));
    }
  } finally {
    admin.disconnect();
  }
}
