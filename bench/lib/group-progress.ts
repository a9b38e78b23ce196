import Kafka from 'node-rdkafka';
import { kafkaError } from '../../server/src/errors/index.js';

export interface GroupProgress {
  /** True once the group's committed offsets reach the end of every partition (as it was when created). */
  caughtUp(): Promise<boolean>;
  close(): void;
}

/**
 * Watches a consumer group's committed offsets on `topic`: the finish line of every throughput
 * run (tally, Kafka Streams: "all offsets committed", not merely "all records read").
 */
export async function watchGroup(brokers: string, groupId: string, topic: string, partitions: number): Promise<GroupProgress> {
  const consumer = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'group.id': groupId, 'enable.auto.commit': false, log_level: 0 }, {});
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
  const parts = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }));
  const ends = await Promise.all(parts.map((tp) => new Promise<number>((resolve, reject) =>
    consumer.queryWatermarkOffsets(topic, tp.partition, 10_000, (err, o) => (err ? reject(kafkaError('watermarks', err)) : resolve(o.highOffset))))));
  return {
    async caughtUp() {
      const committed = await new Promise<Kafka.TopicPartitionOffset[]>((resolve, reject) =>
        consumer.committed(parts, 10_000, (err, tps) => (err ? reject(kafkaError('committed', err)) : resolve(tps))));
      // A committed offset may sit one past the last record when a transaction marker ends the partition.
      return committed.every((tp) => (tp.offset ?? -1) >= ends[tp.partition] - 1);
    },
    close: () => consumer.disconnect(),
  };
}
