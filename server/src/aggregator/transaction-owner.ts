import type Kafka from 'node-rdkafka';
import { IllegalStateError, isGenerationMoved, KafkaClientStuckError, kafkaErrorAction, TaskCorruptedError, TaskMigratedError } from '../errors/index.js';
import { retry, sleep, type OutgoingRecord, type TransactionalClient } from '../kafka/index.js';
import type { Logger } from '../observability/index.js';
import type { AggregatorMetrics } from './aggregator-metrics.js';

/**
 * Where the aggregator's transaction is (KafkaJS's transactionStateMachine):
 *
 *   created ─init─▶ ready ─begin─▶ inTransaction ─▶ committing ─▶ committed ──────settle─▶ ready
 *                                        │  abort, retries out  │
 *                                        ├──────────────────────┴─▶ aborting ─▶ corrupted ─settle─▶ ready (throws TaskCorruptedError)
 *                                        │  rejoin, fatal            │ abort failed
 *                                        └───────────────────────────┴─▶ recreating ─▶ migrated ─settle─▶ ready (throws TaskMigratedError)
 *                                                                              └─▶ broken (no new producer: settle throws why)
 *   any state ─close─▶ closed, once the transaction in flight has ended
 */
export type TransactionState =
  | 'created' | 'ready' | 'inTransaction' | 'committing' | 'aborting' | 'recreating'
  | 'committed' | 'corrupted' | 'migrated' | 'broken' | 'closed';

const NEXT: Record<TransactionState, readonly TransactionState[]> = {
  created: ['ready', 'closed'],
  ready: ['inTransaction', 'closed'],
  inTransaction: ['committing', 'aborting', 'recreating'],
  committing: ['committed', 'aborting', 'recreating'],
  aborting: ['corrupted', 'recreating'],
  recreating: ['migrated', 'broken'],
  committed: ['ready', 'closed'],
  corrupted: ['ready', 'closed'],
  migrated: ['ready', 'closed'],
  broken: ['closed'],
  closed: [],
};
const IN_FLIGHT: ReadonlySet<TransactionState> = new Set(['inTransaction', 'committing', 'aborting', 'recreating']);
const FAILED: ReadonlySet<TransactionState> = new Set(['corrupted', 'migrated', 'broken']);

export type TransactionMetrics = Pick<AggregatorMetrics, 'commitSeconds' | 'transactions' | 'lastCommitTimestamp'>;

export interface TransactionOwnerOptions {
  /** Tries of commitTransaction while kafkaErrorAction says retry. @default 5 */
  commitAttempts?: number;
  /** Tries to get a working producer (connect + initTransactions), a new one each time. @default 10 */
  initAttempts?: number;
  /** Wait between those tries, in ms. @default 1000 */
  initRetryDelayMs?: number;
  /**
   * Runs of one transaction whose offsets met a group generation that had moved on (a rebalance
   * round completed meanwhile): each is aborted and run again, records and offsets alike, with the
   * consumer's new generation, before the failure counts as a migration. @default 10
   */
  generationAttempts?: number;
  /** Wait before such a run, for the consumer to learn the new generation, in ms. @default 200 */
  generationRetryDelayMs?: number;
  /**
   * Longest wait for one call in a transaction (send offsets, commit, abort) and for a disconnect.
   * librdkafka does not always keep its own timeouts: a call still unanswered after this long
   * means the producer is stuck, and it is replaced as after a fatal error (KafkaClientStuckError).
   * @default 45000
   */
  callDeadlineMs?: number;
}

/**
 * The one owner of the aggregator's transactions (Kafka Streams' StreamsProducer): it runs each
 * commit — begin, send the input offsets, produce the records, commit — and decides, by
 * kafkaErrorAction alone, what a failure means:
 *   retry           retry commitTransaction (idempotent: the same transaction commits once);
 *   abort           (or retries run out) abort → TaskCorruptedError: restore the tasks in place;
 *   rejoin, fatal   (fenced, unusable, stuck: a call unanswered past callDeadlineMs, or the abort
 *                   failed too) a new producer, whose initTransactions aborts what the old one
 *                   left open → TaskMigratedError.
 * Before any of these, offsets refused for a moved group generation (isGenerationMoved: a
 * rebalance round completed meanwhile) abort and run the same transaction again, up to
 * generationAttempts runs; only the last refusal is a migration.
 *
 * Pipelining: `begin` starts a commit and returns at once, so the loop keeps processing while the
 * broker commits; `settle` waits for it and reports how it ended. One is in flight at a time:
 * `begin` before the previous one was settled is a bug, thrown as such, like every call made in
 * a state that does not allow it. The same owner drives the at-least-once writer, which is a
 * TransactionalClient too.
 */
export class TransactionOwner {
  private current: TransactionState = 'created';
  private client: TransactionalClient | undefined;
  /** The transaction in flight; it never rejects: how it ended is the state it leaves. */
  private running: Promise<void> | undefined;
  /** What `settle` throws after a failed transaction. */
  private failure: unknown;
  private readonly commitAttempts: number;
  private readonly initAttempts: number;
  private readonly initRetryDelayMs: number;
  private readonly generationAttempts: number;
  private readonly generationRetryDelayMs: number;
  private readonly callDeadlineMs: number;

  constructor(
    private readonly newClient: () => TransactionalClient,
    private readonly log: Logger,
    private readonly metrics: TransactionMetrics,
    options: TransactionOwnerOptions = {},
  ) {
    this.commitAttempts = options.commitAttempts ?? 5;
    this.initAttempts = options.initAttempts ?? 10;
    this.initRetryDelayMs = options.initRetryDelayMs ?? 1_000;
    this.generationAttempts = options.generationAttempts ?? 10;
    this.generationRetryDelayMs = options.generationRetryDelayMs ?? 200;
    this.callDeadlineMs = options.callDeadlineMs ?? 45_000;
  }

  get state(): TransactionState {
    return this.current;
  }

  /** A transaction was begun and has not ended yet. */
  get inFlight(): boolean {
    return IN_FLIGHT.has(this.current);
  }

  /** The last transaction failed; `settle` throws why. */
  get failed(): boolean {
    return FAILED.has(this.current);
  }

  /** Connects a producer and registers its transactional id. */
  async init(): Promise<void> {
    this.expect('init', ['created']);
    this.client = await this.connectClient();
    this.moveTo('ready');
  }

  /**
   * Starts committing one transaction of `records` and the input `offsets`, without waiting.
   * `onCommitted` runs once the broker has committed it.
   */
  begin(records: OutgoingRecord[], offsets: Kafka.TopicPartitionOffset[], onCommitted: () => void): void {
    this.expect('begin', ['ready']);
    this.moveTo('inTransaction');
    this.running = this.run(this.connected(), records, offsets, onCommitted);
  }

  /**
   * Waits for the transaction in flight, if any. Resolves if it committed (or none was in flight);
   * throws TaskCorruptedError or TaskMigratedError if it failed (ready again for the next one), or
   * why no new producer could be had (broken: close it).
   */
  async settle(): Promise<void> {
    this.expect('settle', ['ready', ...IN_FLIGHT, 'committed', ...FAILED]);
    await this.running;
    this.running = undefined;
    const ended = this.current;
    if (ended === 'broken') throw this.failure;
    if (ended === 'committed' || ended === 'corrupted' || ended === 'migrated') this.moveTo('ready');
    if (ended === 'corrupted' || ended === 'migrated') throw this.failure;
  }

  /** Waits for the transaction in flight to end (how no longer matters), then closes the producer. */
  async close(): Promise<void> {
    if (this.current === 'closed') return;
    await this.running;
    this.running = undefined;
    this.moveTo('closed');
    await this.disconnect(this.client);
    this.client = undefined;
  }

  private async run(client: TransactionalClient, records: OutgoingRecord[], offsets: Kafka.TopicPartitionOffset[], onCommitted: () => void): Promise<void> {
    const stopTimer = this.metrics.commitSeconds.startTimer();
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await client.beginTransaction();
          // Offsets first: the one call a rebalance can refuse fails before any record is on its
          // way, so the abort below has nothing in flight to purge (an abort that purged records
          // left librdkafka's idempotent sequence behind: the next commit failed, seen here).
          if (offsets.length > 0) await this.within('sendOffsetsToTransaction', client.sendOffsetsToTransaction(offsets));
          for (const r of records) await client.produce(r);
          break;
        } catch (err) {
          // A rebalance round moved the generation: abort and run the same transaction again (a
          // member that really lost its partitions fails every run, and the last failure is a
          // migration as before).
          if (!isGenerationMoved(err) || attempt >= this.generationAttempts) throw err;
          this.log.warn({ err: String(err), attempt }, 'aggregator.commit_generation_moved');
          this.metrics.transactions.inc({ outcome: 'aborted' });
          await this.within('abortTransaction', client.abortTransaction());
          await sleep(this.generationRetryDelayMs);
        }
      }
      this.moveTo('committing');
      await retry(() => this.within('commitTransaction', client.commitTransaction()), {
        what: 'commitTransaction',
        attempts: this.commitAttempts,
        delayMs: 0,
        bail: (err) => kafkaErrorAction(err) !== 'retry',
        onRetry: (err, attempt) => this.log.warn({ err: String(err), attempt }, 'aggregator.commit_retry'),
      });
    } catch (err) {
      this.metrics.transactions.inc({ outcome: 'aborted' });
      await this.fail(err);
      return;
    }
    stopTimer();
    onCommitted();
    this.metrics.transactions.inc({ outcome: 'committed' });
    this.metrics.lastCommitTimestamp.set(Date.now() / 1000);
    this.moveTo('committed');
  }

  /** Ends a failed transaction as kafkaErrorAction says: aborted (corrupted) or with a new producer (migrated). */
  private async fail(err: unknown): Promise<void> {
    let why = err instanceof Error ? err.message : String(err);
    const action = kafkaErrorAction(err);
    if (action === 'abort' || action === 'retry') {
      this.moveTo('aborting');
      try {
        await this.within('abortTransaction', this.connected().abortTransaction());
        this.failure = new TaskCorruptedError(`transaction aborted: ${why}`, { cause: err });
        this.moveTo('corrupted');
        return;
      } catch (abortErr) {
        // Cannot even abort: start over with a new producer, whose initTransactions aborts for us.
        this.log.error({ err: String(abortErr) }, 'aggregator.abort_failed');
        why = `abort failed after ${why}`;
      }
    }
    this.moveTo('recreating');
    await this.disconnect(this.connected());
    this.client = undefined;
    try {
      this.client = await this.connectClient();
    } catch (initErr) {
      this.failure = initErr;
      this.moveTo('broken');
      return;
    }
    this.failure = new TaskMigratedError(`${why}; producer recreated`, { cause: err });
    this.moveTo('migrated');
  }

  /** A new producer, connected and registered; each try starts from a fresh one. */
  private connectClient(): Promise<TransactionalClient> {
    return retry(async () => {
      const client = this.newClient();
      try {
        await client.connect();
        await client.initTransactions();
        return client;
      } catch (err) {
        await client.disconnect();
        throw err;
      }
    }, {
      what: 'producer init',
      attempts: this.initAttempts,
      delayMs: this.initRetryDelayMs,
      onRetry: (err, attempt) => this.log.warn({ err: String(err), attempt }, 'aggregator.producer_init_retry'),
    });
  }

  /**
   * `call`'s outcome, or KafkaClientStuckError once it has gone unanswered for callDeadlineMs (its
   * late answer, if any, is dropped: the client is replaced and fenced by its successor).
   */
  private within(what: string, call: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new KafkaClientStuckError(`${what}: librdkafka did not answer within ${this.callDeadlineMs} ms`)), this.callDeadlineMs);
    });
    call.catch(() => undefined);
    return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
  }

  /** Disconnects a client, waiting no longer than callDeadlineMs (a stuck one may never close). */
  private async disconnect(client: TransactionalClient | undefined): Promise<void> {
    if (client !== undefined) await this.within('disconnect', client.disconnect()).catch(() => undefined);
  }

  private connected(): TransactionalClient {
    if (this.client === undefined) throw new IllegalStateError(`TransactionOwner in state ${this.current} has no producer: a bug in TransactionOwner`);
    return this.client;
  }

  /** A call in a state that does not allow it is a bug in the caller: say which call, and where. */
  private expect(call: string, allowed: readonly TransactionState[]): void {
    if (!allowed.includes(this.current)) {
      throw new IllegalStateError(`TransactionOwner.${call}() in state ${this.current} (allowed in ${allowed.join(', ')}): a bug in its caller`);
    }
  }

  private moveTo(next: TransactionState): void {
    if (!NEXT[this.current].includes(next)) throw new IllegalStateError(`transaction state ${this.current} → ${next} is no transition: a bug in TransactionOwner`);
    this.current = next;
  }
}
