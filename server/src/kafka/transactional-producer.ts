import Kafka from 'node-rdkafka';
import { IllegalStateError, kafkaError } from '../errors/index.js';
import type { OutgoingRecord } from './delivering-producer.js';
import { enqueue } from './enqueue.js';

/**
 * A producer's transaction calls as promises: what a transaction owner drives (and what its unit
 * tests fake). A failure rejects with librdkafka's error prefixed with what failed; what to do
 * about it is errors' kafkaErrorAction's to say, not the client's.
 */
export interface TransactionalClient {
  connect(): Promise<void>;
  /** Registers the transactional id, fencing an older producer with it and aborting what it left open. */
  initTransactions(): Promise<void>;
  beginTransaction(): Promise<void>;
  /** Resolves once librdkafka queued the record (waiting while its local queue is full), not when delivered. */
  produce(record: OutgoingRecord): Promise<void>;
  /** The input offsets the transaction commits, to the consumer group the client was made for. */
  sendOffsetsToTransaction(offsets: Kafka.TopicPartitionOffset[]): Promise<void>;
  commitTransaction(): Promise<void>;
  abortTransaction(): Promise<void>;
  /** Closes; never fails. */
  disconnect(): Promise<void>;
}

export interface TransactionalProducerSettings {
  brokers: string;
  transactionalId: string;
  transactionTimeoutMs: number;
  /** The consumer whose group the offsets go to (sendOffsetsToTransaction sends its group metadata); none: the transactions carry no offsets. */
  consumer?: Kafka.KafkaConsumer;
  /** Anything else librdkafka takes (batching, queue sizes, message size). */
  extra?: Kafka.ProducerGlobalConfig;
}

/**
 * Timeouts of the broker round trips; librdkafka's errors say whether one that ran out may be
 * retried. A call within a transaction (offsets, commit, abort) waits at most the transaction
 * timeout: by then the coordinator has aborted the transaction, and waiting on is pointless.
 */
const INIT_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 30_000;

/** node-rdkafka's transactional, idempotent producer behind TransactionalClient. */
export class TransactionalProducer implements TransactionalClient {
  private readonly producer: Kafka.Producer;

  constructor(private readonly settings: TransactionalProducerSettings) {
    this.producer = new Kafka.Producer({
      'metadata.broker.list': settings.brokers,
      'transactional.id': settings.transactionalId,
      'enable.idempotence': true,
      'transaction.timeout.ms': settings.transactionTimeoutMs,
      dr_cb: false,
      log_level: 3,
      ...settings.extra,
    });
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => this.producer.connect({ timeout: CONNECT_TIMEOUT_MS }, (err) => {
      if (err) return reject(kafkaError('producer connect', err));
      this.producer.setPollInterval(50);
      resolve();
    }));
  }

  initTransactions(): Promise<void> {
    return this.call('initTransactions', (cb) => this.producer.initTransactions(INIT_TIMEOUT_MS, cb));
  }

  beginTransaction(): Promise<void> {
    return this.call('beginTransaction', (cb) => this.producer.beginTransaction(cb));
  }

  produce(record: OutgoingRecord): Promise<void> {
    return enqueue(this.producer, record);
  }

  sendOffsetsToTransaction(offsets: Kafka.TopicPartitionOffset[]): Promise<void> {
    const consumer = this.settings.consumer;
    if (consumer === undefined) return Promise.reject(new IllegalStateError('sendOffsetsToTransaction on a producer made without a consumer'));
    return this.call('sendOffsetsToTransaction', (cb) => this.producer.sendOffsetsToTransaction(offsets, consumer, this.settings.transactionTimeoutMs, cb));
  }

  commitTransaction(): Promise<void> {
    return this.call('commitTransaction', (cb) => this.producer.commitTransaction(this.settings.transactionTimeoutMs, cb));
  }

  abortTransaction(): Promise<void> {
    return this.call('abortTransaction', (cb) => this.producer.abortTransaction(this.settings.transactionTimeoutMs, cb));
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.producer.isConnected()) return resolve();
      this.producer.disconnect(5_000, () => resolve());
    });
  }

  private call(what: string, fn: (cb: (err: Kafka.LibrdKafkaError) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => fn((err) => (err ? reject(kafkaError(what, err)) : resolve())));
  }
}
