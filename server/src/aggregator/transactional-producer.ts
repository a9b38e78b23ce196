import Kafka from 'node-rdkafka';
import { isKafkaError, kafkaError, TaskCorruptedError, TaskMigratedError, type KafkaErrorLike } from '../errors/index.js';
import type { OutgoingRecord } from '../kafka/index.js';
import type { Logger } from '../observability/index.js';
import type { CommitWriter } from './commit-writer.js';

const { ERR__QUEUE_FULL } = Kafka.CODES.ERRORS;

/**
 * Owns the aggregator's one transactional producer (Kafka Streams' StreamsProducer): every commit
 * is one transaction holding the output records and the input offsets. librdkafka's error flags
 * decide what happens next:
 *   fatal (e.g. fenced by a newer instance)          → TaskMigratedError: recreate, restore everything
 *   requires abort / unknown outcome after retries  → abort, TaskCorruptedError: restore
 *   retriable on commit                             → retry the commit (it is idempotent)
 */
export class TransactionalProducer implements CommitWriter {
  private producer: Kafka.Producer;

  readonly description: string;

  constructor(
    private readonly brokers: string,
    readonly transactionalId: string,
    private readonly transactionTimeoutMs: number,
    private readonly log: Logger,
  ) {
    this.description = `exactly_once (transactional.id ${transactionalId})`;
    this.producer = this.createProducer();
  }

  private createProducer(): Kafka.Producer {
    return new Kafka.Producer({
      'metadata.broker.list': this.brokers,
      'transactional.id': this.transactionalId,
      'enable.idempotence': true,
      'transaction.timeout.ms': this.transactionTimeoutMs,
      'linger.ms': 5,
      'batch.num.messages': 10_000,
      'queue.buffering.max.messages': 1_000_000,
      'queue.buffering.max.kbytes': 1_048_576,
      'message.max.bytes': 4_000_000,
      dr_cb: false,
      log_level: 3,
    });
  }

  /** Connects and runs initTransactions, which also aborts a transaction our previous incarnation left open. */
  async init(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.producer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    this.producer.setPollInterval(50);
    await this.call('initTransactions', (cb) => this.producer.initTransactions(60_000, cb));
  }

  /**
   * One transaction: begin, produce every record, attach the consumer offsets, commit.
   * Resolves once the broker committed; throws TaskMigratedError or TaskCorruptedError otherwise.
   */
  async commit(records: OutgoingRecord[], offsets: Kafka.TopicPartitionOffset[], consumer: Kafka.KafkaConsumer): Promise<void> {
    try {
      await this.call('beginTransaction', (cb) => this.producer.beginTransaction(cb));
      for (const r of records) await this.produce(r);
      if (offsets.length > 0) {
        await this.call('sendOffsetsToTransaction', (cb) => this.producer.sendOffsetsToTransaction(offsets, consumer, 30_000, cb));
      }
      await this.commitWithRetry();
    } catch (err) {
      throw await this.failTransaction(err);
    }
  }

  private async commitWithRetry(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.call('commitTransaction', (cb) => this.producer.commitTransaction(30_000, cb));
        return;
      } catch (err) {
        if (isKafkaError(err) && err.isRetriable && !err.isTxnRequiresAbort && !err.isFatal && attempt < 5) {
          this.log.warn({ err: err.message, attempt }, 'aggregator.commit_retry');
          continue;
        }
        throw err;
      }
    }
  }

  /** Turns a failed transaction into what the caller must do, aborting where librdkafka allows it. */
  private async failTransaction(err: unknown): Promise<Error> {
    const k: KafkaErrorLike | undefined = isKafkaError(err) ? err : undefined;
    if (k?.isFatal) {
      await this.recreate();
      return new TaskMigratedError(`transaction failed fatally (${k.message}); producer recreated`, { cause: err });
    }
    try {
      await this.call('abortTransaction', (cb) => this.producer.abortTransaction(30_000, cb));
    } catch (abortErr) {
      // Cannot even abort: start over with a new producer, whose initTransactions aborts for us.
      this.log.error({ err: String(abortErr) }, 'aggregator.abort_failed');
      await this.recreate();
      return new TaskMigratedError(`abort failed after ${k?.message ?? String(err)}; producer recreated`, { cause: err });
    }
    return new TaskCorruptedError(`transaction aborted: ${k?.message ?? String(err)}`, { cause: err });
  }

  private async recreate(): Promise<void> {
    await this.disconnect();
    this.producer = this.createProducer();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.init();
        return;
      } catch (err) {
        if (attempt >= 10) throw err;
        this.log.warn({ err: String(err), attempt }, 'aggregator.producer_init_retry');
        await new Promise((r) => setTimeout(r, 1000));
        await this.disconnect();
        this.producer = this.createProducer();
      }
    }
  }

  private async produce(r: OutgoingRecord): Promise<void> {
    for (;;) {
      try {
        const key = typeof r.key === 'string' ? Buffer.from(r.key) : r.key;
        this.producer.produce(r.topic, r.partition, r.value, key, Date.now(), undefined, r.headers);
        return;
      } catch (err) {
        if (isKafkaError(err) && err.code === ERR__QUEUE_FULL) {
          this.producer.poll();
          await new Promise((res) => setTimeout(res, 5));
          continue;
        }
        throw err;
      }
    }
  }

  private call(what: string, fn: (cb: (err: Kafka.LibrdKafkaError) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      fn((err) => {
        if (err) reject(kafkaError(what, err));
        else resolve();
      });
    });
  }

  disconnect(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.producer.isConnected()) return resolve();
      this.producer.disconnect(5_000, () => resolve());
    });
  }
}
