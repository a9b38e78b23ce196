/**
 * What a Kafka cluster shows a test about itself: which broker leads which partition, whether
 * every replica is back in sync, which broker coordinates a group or a transactional id.
 */
import type Kafka from 'node-rdkafka';
import { fetchMetadata } from '../../server/src/kafka/index.js';

/** Kafka's own topics: the aggregator's offsets and its transactions' state live there. */
export const INTERNAL_TOPICS = ['__consumer_offsets', '__transaction_state'];

export class ClusterView {
  private constructor(private readonly md: Kafka.Metadata) {}

  /** The cluster's metadata now, as any live broker of `brokers` answers it. */
  static async read(brokers: string, timeoutMs = 5_000): Promise<ClusterView> {
    const md = await fetchMetadata(brokers, timeoutMs);
    // Kafka's internal topics asked by name: a request for every topic may leave them out (absent: no partitions).
    const internal = await Promise.all(INTERNAL_TOPICS.map((topic) => fetchMetadata(brokers, timeoutMs, topic)));
    const byName = new Map(md.topics.map((t) => [t.name, t]));
    for (const t of internal.flatMap((m) => m.topics)) if (INTERNAL_TOPICS.includes(t.name) && t.partitions.length > 0) byName.set(t.name, t);
    return new ClusterView({ ...md, topics: [...byName.values()] });
  }

  get brokerIds(): number[] {
    return this.md.brokers.map((b) => b.id).sort((a, b) => a - b);
  }

  /** The partitions of `topics` (unknown topics: none). */
  partitions(topics: readonly string[]): Array<{ topic: string; partition: Kafka.PartitionMetadata }> {
    return this.md.topics.filter((t) => topics.includes(t.name)).flatMap((t) => t.partitions.map((partition) => ({ topic: t.name, partition })));
  }

  /** `topic:partition` of every partition of `topics` that `broker` leads. */
  ledBy(broker: number, topics: readonly string[]): string[] {
    return this.partitions(topics).filter((p) => p.partition.leader === broker).map((p) => `${p.topic}:${p.partition.id}`);
  }

  /** The partitions of `topic` that `broker` leads. */
  partitionsLedBy(broker: number, topic: string): number[] {
    return this.partitions([topic]).filter((p) => p.partition.leader === broker).map((p) => p.partition.id).sort((a, b) => a - b);
  }

  /**
   * Every partition of `topics` and of Kafka's internal topics (once they exist: Kafka creates them
   * on first use) has a leader and all its replicas in sync; `topics` must exist (a restarted
   * broker may answer before it knows them).
   */
  inSync(topics: readonly string[]): boolean {
    const known = new Set(this.md.topics.map((t) => t.name));
    if (!topics.every((t) => known.has(t))) return false;
    return this.partitions([...topics, ...INTERNAL_TOPICS]).every(({ partition: p }) => p.leader >= 0 && p.replicas.length > 0 && p.isrs.length === p.replicas.length);
  }

  /** Partitions of `topics` with a replica out of sync, for a failure message. */
  describeOutOfSync(topics: readonly string[]): string {
    return this.partitions([...topics, ...INTERNAL_TOPICS])
      .filter(({ partition: p }) => p.isrs.length !== p.replicas.length || p.leader < 0)
      .map(({ topic, partition: p }) => `${topic}:${p.id} leader ${p.leader} isr [${p.isrs.join(',')}] of [${p.replicas.join(',')}]`)
      .join('; ') || 'none';
  }

  /** The broker coordinating a consumer group (`__consumer_offsets`) or a transactional id (`__transaction_state`). */
  coordinatorOf(kind: 'group' | 'transaction', id: string): number | undefined {
    const topic = kind === 'group' ? '__consumer_offsets' : '__transaction_state';
    const partitions = this.partitions([topic]);
    if (partitions.length === 0) return undefined;
    const p = coordinatorPartition(id, partitions.length);
    return partitions.find((x) => x.partition.id === p)?.partition.leader;
  }
}

/** Kafka's coordinator partition of a group or transactional id: Utils.abs(id.hashCode()) % partitions. */
export function coordinatorPartition(id: string, partitions: number): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(31, h) + id.charCodeAt(i)) | 0;
  return (h === -2147483648 ? 0 : Math.abs(h)) % partitions;
}
