import type Kafka from 'node-rdkafka';
import type { OutgoingRecord } from '../kafka/index.js';

/**
 * Writes one commit of the aggregator: the records its tasks prepared (window rows, dedup chunks,
 * dead letters, forwards) and the input offsets they cover. Kafka Streams' processing.guarantee
 * picks the implementation:
 *   exactly_once  → TransactionalProducer: one Kafka transaction holds records and offsets;
 *   at_least_once → AtLeastOnceWriter: records acknowledged first, offsets committed after, so a
 *                   crash in between replays (and may count twice) what the offsets did not cover.
 * A failed commit throws TaskCorruptedError or TaskMigratedError: the caller restores its state.
 */
export interface CommitWriter {
  /** What the log says this writer is (transactional id, or the mode). */
  readonly description: string;
  init(): Promise<void>;
  commit(records: OutgoingRecord[], offsets: Kafka.TopicPartitionOffset[], consumer: Kafka.KafkaConsumer): Promise<void>;
  disconnect(): Promise<void>;
}
