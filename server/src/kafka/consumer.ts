/**
 * node-rdkafka's KafkaConsumer with promises: every callback API tally uses becomes an awaitable
 * call whose failure is a librdkafka error prefixed with what failed (classify it with
 * errors' kafkaErrorAction). Synchronous calls go to `client` directly.
 */
import Kafka from 'node-rdkafka';
import { kafkaError, TallyError } from '../errors/index.js';
import type { RebalanceProtocol, RebalanceQueue } from './rebalance-queue.js';

export const OFFSET_BEGINNING = -2;

export interface ConsumerSettings {
  brokers: string;
  groupId: string;
  clientId?: string;
  isolation: 'read_committed' | 'read_uncommitted';
  /** consume(n) returns at a partition's end instead of waiting out its timeout for more. */
  partitionEof?: boolean;
  /** Subscribed consumers: the queue receives every assignment and revocation. */
  rebalances?: RebalanceQueue;
  /** Anything else librdkafka takes (session timeouts, fetch sizes, the assignor). */
  extra?: Kafka.ConsumerGlobalConfig;
}

export class Consumer {
  readonly client: Kafka.KafkaConsumer;

  constructor(settings: ConsumerSettings) {
    const rebalances = settings.rebalances;
    this.client = new Kafka.KafkaConsumer({
      'metadata.broker.list': settings.brokers,
      'group.id': settings.groupId,
      ...(settings.clientId === undefined ? {} : { 'client.id': settings.clientId }),
      // tally commits only what it has written (a transaction, a ClickHouse insert), never on a timer.
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': settings.isolation,
      'enable.partition.eof': settings.partitionEof ?? false,
      ...(rebalances === undefined ? {} : { rebalance_cb: rebalances.callback(() => this.client) }),
      log_level: 3,
      ...settings.extra,
    }, { 'auto.offset.reset': 'earliest' });
  }

  connect(timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => this.client.connect({ timeout: timeoutMs }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
  }

  /** Leaves the group (a subscribed consumer) and closes; never fails. */
  disconnect(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.client.isConnected()) return resolve();
      this.client.disconnect(() => resolve());
    });
  }

  /**
   * Adds `positions` to what this member consumes (the loop's answer to an assignment): under the
   * eager protocol they are the whole assignment, under the cooperative one an increment.
   * librdkafka waits for this call, even with nothing to add, before the rebalance goes on.
   */
  take(positions: Kafka.TopicPartitionOffset[], protocol: RebalanceProtocol): void {
    if (protocol === 'cooperative') this.client.incrementalAssign(positions);
    else this.client.assign(positions);
  }

  /**
   * Stops consuming every assigned topic-partition numbered in `partitions` (the loop's answer to
   * a revocation; a consumer's topics share partition numbers, so one that follows a revoked
   * partition goes with it). Eager: everything goes. Called even with nothing to let go: librdkafka
   * waits for it.
   */
  release(partitions: readonly number[], protocol: RebalanceProtocol): void {
    if (protocol === 'eager') {
      this.client.unassign();
      return;
    }
    const going = new Set(partitions);
    this.client.incrementalUnassign(this.client.assignments().filter((a) => going.has(a.partition)));
  }

  /** Up to `n` records; waits at most `timeoutMs` for each one still missing (librdkafka's semantics). */
  consume(n: number, timeoutMs: number): Promise<Kafka.Message[]> {
    this.client.setDefaultConsumeTimeout(timeoutMs);
    return new Promise((resolve, reject) => this.client.consume(n, (err, msgs) => (err ? reject(kafkaError('consume', err)) : resolve(msgs))));
  }

  committed(partitions: Kafka.TopicPartition[], timeoutMs: number): Promise<Kafka.TopicPartitionOffset[]> {
    return new Promise((resolve, reject) => this.client.committed(partitions, timeoutMs, (err, tps) => (err ? reject(kafkaError('committed offsets', err)) : resolve(tps))));
  }

  seek(tp: Kafka.TopicPartitionOffset, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => this.client.seek(tp, timeoutMs, (err) => (err ? reject(kafkaError(`seek ${tp.topic}:${tp.partition}`, err)) : resolve())));
  }

  /**
   * Low and high watermark as the partition's leader reports them now (for this client's isolation
   * level). A failure also asks for the topic's metadata before it is thrown: librdkafka learns a
   * partition's new leader from its fetches, so a client that only queries (a restore, the
   * pipeline status) would otherwise keep asking a dead leader, or none ("Unknown partition"), for
   * minutes after a failover; with the metadata refreshed, the caller's next try reaches the new one.
   */
  async queryWatermarkOffsets(topic: string, partition: number, timeoutMs: number): Promise<Kafka.WatermarkOffsets> {
    try {
      return await new Promise<Kafka.WatermarkOffsets>((resolve, reject) => this.client.queryWatermarkOffsets(topic, partition, timeoutMs, (err, o) =>
        (err ? reject(kafkaError(`watermarks of ${topic}:${partition}`, err)) : resolve(o))));
    } catch (err) {
      await this.partitionsOf(topic, timeoutMs).catch(() => undefined);
      throw err;
    }
  }

  /** The partitions of `topic`, sorted; throws if it does not exist. */
  async partitionsOf(topic: string, timeoutMs: number): Promise<number[]> {
    const md = await new Promise<Kafka.Metadata>((resolve, reject) => this.client.getMetadata({ topic, timeout: timeoutMs }, (err, m) =>
      (err ? reject(kafkaError(`metadata of ${topic}`, err)) : resolve(m))));
    const t = md.topics.find((x) => x.name === topic);
    // Retriable: right after a topic is created its metadata may not have reached this broker yet.
    if (t === undefined || t.partitions.length === 0) throw new TallyError(`topic ${topic} does not exist`, { retriable: true });
    return t.partitions.map((p) => p.id).sort((a, b) => a - b);
  }

  /** The end offset as of the last fetch (no request); undefined before the first fetch. */
  cachedHighOffset(topic: string, partition: number): number | undefined {
    try {
      const o = this.client.getWatermarkOffsets(topic, partition).highOffset;
      return o >= 0 ? o : undefined;
    } catch {
      return undefined;
    }
  }
}
