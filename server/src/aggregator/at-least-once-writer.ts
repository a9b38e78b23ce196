import type Kafka from 'node-rdkafka';
import { TaskCorruptedError } from '../errors/index.js';
import { DeliveringProducer, type OutgoingRecord } from '../kafka/index.js';
import type { CommitWriter } from './commit-writer.js';

/**
 * The at-least-once commit (TALLY_PROCESSING_GUARANTEE=at_least_once): the same records as the
 * transactional commit, produced by an idempotent producer and acknowledged by the broker, then the
 * input offsets committed to the group. No transaction: it exists to measure what exactly-once
 * costs (npm run bench), not for billing — a crash between the two steps counts records again.
 */
export class AtLeastOnceWriter implements CommitWriter {
  readonly description = 'at_least_once';
  private readonly producer: DeliveringProducer;

  constructor(brokers: string) {
    // Delivery reports every 5 ms: each commit waits for its last one.
    this.producer = new DeliveringProducer(brokers, { 'message.max.bytes': 4_000_000, 'queue.buffering.max.messages': 1_000_000 }, 5);
  }

  init(): Promise<void> {
    return this.producer.connect(30_000);
  }

  async commit(records: OutgoingRecord[], offsets: Kafka.TopicPartitionOffset[], consumer: Kafka.KafkaConsumer): Promise<void> {
    try {
      await this.producer.send(records);
      // Synchronous: the loop waits one round trip, as it waits for a transaction's commit.
      if (offsets.length > 0) consumer.commitSync(offsets);
    } catch (err) {
      throw new TaskCorruptedError(`at-least-once commit failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  disconnect(): Promise<void> {
    return this.producer.disconnect();
  }
}
