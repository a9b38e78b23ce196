import type Kafka from 'node-rdkafka';
import { DeliveringProducer, type OutgoingRecord, type TransactionalClient } from '../kafka/index.js';

/**
 * The at-least-once commit (TALLY_PROCESSING_GUARANTEE=at_least_once) as a TransactionalClient,
 * so the same TransactionOwner drives it: a "transaction" collects the records and the input
 * offsets; its commit produces the records with an idempotent producer, waits until the broker
 * acknowledged every one, then commits the offsets to the group. No Kafka transaction: it exists
 * to measure what exactly-once costs (npm run bench), not for billing — a crash between the two
 * steps counts records again. Abort forgets what was collected.
 */
export class AtLeastOnceWriter implements TransactionalClient {
  private readonly producer: DeliveringProducer;
  private records: OutgoingRecord[] = [];
  private offsets: Kafka.TopicPartitionOffset[] = [];
  private connected = false;

  constructor(brokers: string, private readonly consumer: Kafka.KafkaConsumer) {
    // Delivery reports every 5 ms: each commit waits for its last one.
    this.producer = new DeliveringProducer(brokers, { 'message.max.bytes': 4_000_000, 'queue.buffering.max.messages': 1_000_000 }, 5);
  }

  async connect(): Promise<void> {
    await this.producer.connect(30_000);
    this.connected = true;
  }

  /** No transactional id: nothing to register or fence. */
  async initTransactions(): Promise<void> {}

  async beginTransaction(): Promise<void> {
    this.forget();
  }

  async produce(record: OutgoingRecord): Promise<void> {
    this.records.push(record);
  }

  async sendOffsetsToTransaction(offsets: Kafka.TopicPartitionOffset[]): Promise<void> {
    this.offsets = offsets;
  }

  async commitTransaction(): Promise<void> {
    await this.producer.send(this.records);
    // Acknowledged: a retried commit only commits the offsets again.
    this.records = [];
    // Synchronous: the loop waits one round trip, as it waits for a transaction's commit.
    if (this.offsets.length > 0) this.consumer.commitSync(this.offsets);
  }

  async abortTransaction(): Promise<void> {
    this.forget();
  }

  /** DeliveringProducer's disconnect flushes first, which a producer never connected refuses. */
  async disconnect(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
    this.connected = false;
  }

  private forget(): void {
    this.records = [];
    this.offsets = [];
  }
}
