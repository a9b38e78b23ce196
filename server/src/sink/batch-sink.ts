/**
 * The one loop of every ClickHouse sink: consume a batch (bounded in rows and age), insert it,
 * and only after ClickHouse acknowledged it commit its offsets (synchronously). A sink supplies
 * the batch and its hooks (batch-target.ts); log events are `<events>.…`.
 *
 * ClickHouse refusing → the same batch is retried with backoff (100 ms doubling to 5 s) while its
 * partitions are paused and the consumer is still polled, so the group sees us alive; one warning
 * per outage. Any rebalance voids the uncommitted batch and the acknowledged offsets whose commit
 * failed: with eager assignment every partition is revoked, and a newly assigned one starts at its
 * committed offset, so whatever was not committed is read again, by us or by the new owner (the
 * tables are ReplacingMergeTree: a second insert of a row changes nothing). A stop inserts and
 * commits the open batch; a batch ClickHouse still refuses after the shutdown grace stays uncommitted.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import type Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { isKafkaError, kafkaErrorAction } from '../errors/index.js';
import { Consumer, GROUP_MEMBER_TIMING, RebalanceQueue, sleep, type RebalanceEvent } from '../kafka/index.js';
import { Throttle, type Logger } from '../observability/index.js';
import type { BatchSinkOptions, BatchTarget, SinkBatch } from './batch-target.js';
import { BatchWriter } from './batch-writer.js';
import { Backoff } from './pacing.js';
import { PartitionOffsets, type PartitionOffset } from './partition-offsets.js';

/** Most records one consume call returns. */
const MAX_CONSUME = 5_000;
/** Longest a consume call waits for the first record; bounds stop and rebalance latency. */
const POLL_MS = 100;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** See SinkOptions.shutdownGraceMs. */
const SHUTDOWN_GRACE_MS = 10_000;
/** A commit that failed (rows already in ClickHouse) is tried again at least this often while idle. */
const COMMIT_RETRY_MS = 1_000;
const ERROR_LOG_EVERY_MS = 10_000;

export class BatchSink {
  readonly consumer: Consumer;
  private readonly writer: BatchWriter;
  private readonly shutdownGraceMs: number;
  private readonly rebalances: RebalanceQueue;
  private readonly batch: SinkBatch;
  /** Offsets of rows ClickHouse has acknowledged whose commit failed; retried, dropped on rebalance. */
  private readonly pendingCommit = new PartitionOffsets();
  private readonly consumeErrorLog = new Throttle(ERROR_LOG_EVERY_MS);
  private readonly kafkaErrorLog = new Throttle(ERROR_LOG_EVERY_MS);
  /** Partitions as this loop sees them: assigned when it handled the assign event, cleared on revoke. */
  private assigned = new Set<number>();
  /** Bumped whenever a rebalance is handled: a batch from an older generation is void. */
  private generation = 0;
  private paused = false;
  private stopRequestedAt: number | undefined;
  /** A batch was left uncommitted at shutdown because ClickHouse did not take it in time. */
  private abandoned = false;
  private starting: Promise<void> | undefined;
  private loopDone: Promise<void> | undefined;
  private lastCommitAttemptAt = 0;

  constructor(config: TallyConfig, private readonly opts: BatchSinkOptions, private readonly target: BatchTarget, private readonly log: Logger) {
    this.batch = target.batch;
    this.writer = new BatchWriter(config, opts, log);
    this.shutdownGraceMs = opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
    this.rebalances = new RebalanceQueue((err) => this.log.error({ err: err.message, code: err.code }, `${opts.events}.rebalance_error`));
    this.consumer = new Consumer({
      brokers: config.kafka.brokers,
      groupId: opts.group,
      clientId: `${opts.name}-${config.instanceId}`,
      isolation: 'read_committed',
      // EOF makes consume(n) return as soon as it is caught up, so a trickle cannot hold a batch open.
      partitionEof: true,
      rebalances: this.rebalances,
      extra: {
        // Eager: every rebalance revokes everything, which is what voiding the whole batch assumes.
        'partition.assignment.strategy': 'range',
        ...GROUP_MEMBER_TIMING,
      },
    });
    this.consumer.client.on('event.error', (err) => {
      if (this.kafkaErrorLog.ready(Date.now())) this.log.warn({ err: err.message, code: err.code }, `${opts.events}.kafka_error`);
    });
  }

  /** The sink's ClickHouse client (for work beside the loop's inserts). */
  get clickhouse(): ClickHouseClient {
    return this.writer.clickhouse;
  }

  /** Resolves once the consumer is connected and subscribed and the loop runs; rejects if it could not connect. */
  start(): Promise<void> {
    this.starting ??= this.connectAndRun();
    return this.starting;
  }

  /**
   * Inserts and commits the open batch (within the shutdown grace), leaves the group, disconnects,
   * and resolves when all that is done. A stop during start() takes effect right after starting.
   */
  async stop(): Promise<void> {
    this.stopRequestedAt ??= Date.now();
    await this.starting?.catch(() => undefined);
    await this.loopDone?.catch(() => undefined);
  }

  /** Resolves when the loop ends; rejects if it crashed (a fatal Kafka error). */
  get done(): Promise<void> {
    return this.loopDone ?? Promise.resolve();
  }

  private async connectAndRun(): Promise<void> {
    await this.consumer.connect();
    this.consumer.client.subscribe([this.opts.topic]);
    this.log.info({ topic: this.opts.topic, group: this.opts.group, ...this.opts.describe }, `${this.opts.events}.started`);
    this.target.started?.();
    this.loopDone = this.run();
  }

  private get stopping(): boolean {
    return this.stopRequestedAt !== undefined;
  }

  private async run(): Promise<void> {
    const ev = this.opts.events;
    try {
      while (!this.stopping) {
        await this.poll(this.consumeCount(), this.consumeTimeout());
        if (this.flushDue()) await this.flush();
        else if (this.batch.isEmpty && this.pendingCommit.size > 0 && Date.now() - this.lastCommitAttemptAt >= COMMIT_RETRY_MS) this.commit([]);
        this.target.polled?.();
      }
      this.handleRebalances();
      await this.flush();
      if (this.pendingCommit.size > 0) this.commit([]);
      if (!this.abandoned && this.pendingCommit.size === 0) this.log.info(`${ev}.stopped_cleanly`);
      // Not an error: what was not committed is read again by the next owner of the partitions.
      else this.log.warn({ pendingCommit: Object.fromEntries(this.pendingCommit.entries().map((o) => [o.partition, o.offset])) }, `${ev}.stopped_with_uncommitted_records`);
    } finally {
      this.rebalances.close();
      this.writer.stopWaiting();
      await this.consumer.disconnect();
      await this.target.drain?.();
      await this.writer.close();
    }
    this.log.info({ inserted: this.writer.rowsInserted }, `${ev}.stopped`);
  }

  private consumeCount(): number {
    return Math.max(1, Math.min(MAX_CONSUME, this.opts.batchRows - this.batch.rowCount));
  }

  private consumeTimeout(): number {
    const first = this.batch.firstRecordAt;
    if (first === undefined) return POLL_MS;
    return Math.max(1, Math.min(POLL_MS, this.opts.batchMs - (Date.now() - first)));
  }

  private flushDue(): boolean {
    const first = this.batch.firstRecordAt;
    if (first === undefined) return false;
    return this.batch.rowCount >= this.opts.batchRows || Date.now() - first >= this.opts.batchMs;
  }

  /** One consume call: records of partitions this loop owns go into the batch (others are left for their owner), then rebalances are handled. */
  private async poll(n: number, timeoutMs: number): Promise<void> {
    const msgs = await this.consume(n, timeoutMs);
    const now = Date.now();
    for (const m of msgs) if (this.assigned.has(m.partition)) this.target.add(m, now);
    this.handleRebalances();
  }

  /** A fatal Kafka error rejects (ending the loop); any other failure is logged (rate-limited) and read as no records. */
  private async consume(n: number, timeoutMs: number): Promise<Kafka.Message[]> {
    try {
      return await this.consumer.consume(n, timeoutMs);
    } catch (err) {
      if (kafkaErrorAction(err) === 'fatal') throw err;
      if (this.consumeErrorLog.ready(Date.now())) this.log.warn({ err: errorMessage(err), code: isKafkaError(err) ? err.code : undefined }, `${this.opts.events}.consume_error`);
      await sleep(POLL_MS);
      return [];
    }
  }

  private handleRebalances(): void {
    const ev = this.opts.events;
    for (let e: RebalanceEvent | undefined = this.rebalances.next(); e !== undefined; e = this.rebalances.next()) {
      this.opts.metrics?.rebalances.inc({ kind: e.kind });
      this.generation++;
      if (!this.batch.isEmpty || this.pendingCommit.size > 0) {
        this.log.info({ kind: e.kind, records: this.batch.records, offsets: this.batch.offsets() }, `${ev}.batch_discarded_on_rebalance`);
        this.opts.metrics?.batches.inc({ outcome: 'discarded' });
      }
      this.batch.clear();
      this.pendingCommit.clear();
      this.paused = false;
      if (e.kind === 'revoke') {
        this.log.info({ partitions: e.partitions }, `${ev}.partitions_revoked`);
        this.assigned = new Set();
        this.consumer.client.unassign();
        this.target.revoked?.();
      } else {
        this.log.info({ partitions: e.partitions }, `${ev}.partitions_assigned`);
        this.assigned = new Set(e.partitions);
        // No offset: librdkafka starts each partition at its committed offset (or earliest).
        this.consumer.client.assign(e.assignment.map(({ topic, partition }) => ({ topic, partition })));
        this.target.assigned?.(e.partitions);
      }
      this.opts.metrics?.assigned.set(this.assigned.size);
    }
  }

  /** Inserts the batch (retrying until ClickHouse takes it, a rebalance voids it, or the shutdown grace ends), then commits its offsets. */
  private async flush(): Promise<void> {
    if (this.batch.isEmpty) return;
    if (!(await this.insertWithRetry())) return;
    this.opts.metrics?.batches.inc({ outcome: 'inserted' });
    this.target.inserted?.();
    const offsets = this.batch.offsets();
    this.batch.clear();
    this.commit(offsets);
  }

  /**
   * True once ClickHouse acknowledged the whole batch. False if a rebalance voided the batch
   * meanwhile, or a stop request's grace ran out (the batch is then left uncommitted: re-read later).
   */
  private async insertWithRetry(): Promise<boolean> {
    const generation = this.generation;
    const backoff = new Backoff(BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
    // Each attempt asks the batch for its rows again: records consumed during the backoff joined it.
    while (!(await this.writer.tryInsert(this.batch))) {
      this.setPaused(true);
      // Back off, still polling the consumer (paused: no records) so rebalances and the poll interval are served.
      const until = Date.now() + backoff.next();
      while (Date.now() < until) {
        if (this.graceOver()) {
          this.abandonBatch();
          return false;
        }
        await this.poll(MAX_CONSUME, Math.max(1, Math.min(POLL_MS, until - Date.now())));
        if (this.generation !== generation) {
          this.writer.stopWaiting();
          return false;
        }
      }
    }
    this.setPaused(false);
    return true;
  }

  private graceOver(): boolean {
    return this.stopRequestedAt !== undefined && Date.now() - this.stopRequestedAt >= this.shutdownGraceMs;
  }

  private abandonBatch(): void {
    this.log.warn({ records: this.batch.records, offsets: this.batch.offsets() }, `${this.opts.events}.stopped_with_unflushed_batch`);
    this.opts.metrics?.batches.inc({ outcome: 'abandoned' });
    this.writer.stopWaiting();
    this.abandoned = true;
    this.batch.clear();
  }

  /** Pauses or resumes every owned partition (consume calls still serve rebalances and the poll interval). */
  private setPaused(paused: boolean): void {
    if (this.paused === paused || this.assigned.size === 0) return;
    const tps = [...this.assigned].map((partition) => ({ topic: this.opts.topic, partition }));
    try {
      if (paused) this.consumer.client.pause(tps);
      else this.consumer.client.resume(tps);
      this.paused = paused;
    } catch (err) {
      this.log.warn({ err: String(err) }, `${this.opts.events}.${paused ? 'pause_failed' : 'resume_failed'}`);
    }
  }

  /**
   * Commits (synchronously) `offsets` plus any earlier ones whose commit failed. Only called
   * after ClickHouse acknowledged the rows up to these offsets.
   */
  private commit(offsets: PartitionOffset[]): void {
    this.pendingCommit.advanceAll(offsets);
    if (this.pendingCommit.size === 0) return;
    const committing = this.pendingCommit.entries();
    const tps = committing.map(({ partition, offset }) => ({ topic: this.opts.topic, partition, offset }));
    this.lastCommitAttemptAt = Date.now();
    try {
      this.consumer.client.commitSync(tps);
      this.pendingCommit.clear();
      this.target.committed?.(committing);
    } catch (err) {
      // Typically a rebalance in progress: handling it drops these, and the rows are re-read.
      this.opts.metrics?.commitFailures.inc();
      this.log.warn({ err: errorMessage(err), code: isKafkaError(err) ? err.code : undefined, offsets: tps }, `${this.opts.events}.commit_failed`);
    }
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
