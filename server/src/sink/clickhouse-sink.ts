import type { ClickHouseClient } from '@clickhouse/client';
import Kafka from 'node-rdkafka';
import { createClickHouse, identifier } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { isKafkaError, kafkaError } from '../errors/index.js';
import type { Logger } from '../observability/index.js';
import { rollUpFinalPeriods } from './period-rollup.js';
import { RowBatch } from './row-batch.js';
import { SinkMetrics } from './sink-metrics.js';

const { ERR__ASSIGN_PARTITIONS, ERR__REVOKE_PARTITIONS } = Kafka.CODES.ERRORS;
/** Most records one consume call returns. */
const MAX_CONSUME = 5_000;
/** Longest a consume call waits for the first record; bounds signal and rebalance latency. */
const POLL_MS = 100;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** After SIGTERM, how long a batch that ClickHouse refuses is still retried before it is left uncommitted. */
const SHUTDOWN_GRACE_MS = 10_000;
/** A commit that failed (rows already in ClickHouse) is tried again at least this often while idle. */
const COMMIT_RETRY_MS = 1_000;
const LAG_EVERY_MS = 1_000;
const ERROR_LOG_EVERY_MS = 10_000;

type RebalanceEvent = { kind: 'assign' | 'revoke'; partitions: number[] };

export interface ClickHouseSinkOptions {
  /** A client to use instead of one built from the config (not closed by the sink). */
  clickhouse?: ClickHouseClient;
  /** See SHUTDOWN_GRACE_MS. */
  shutdownGraceMs?: number;
}

/**
 * `tally sink`: impression-counts (read_committed) → ClickHouse. One loop: consume a batch
 * (bounded by TALLY_SINK_BATCH_ROWS rows and TALLY_SINK_BATCH_MS), insert it into
 * `impression_counts`, the billing ledger tables (`billing_ledger`, `billing_late`, `period_closes`)
 * and `partition_watermarks`, in that order, and only then commit the offsets. ClickHouse
 * refusing → the same batch is retried with backoff while consumption is paused (the consumer is
 * still polled so the group sees it alive); nothing is ever skipped except records tally did not
 * write. Any rebalance throws the uncommitted batch away: with eager assignment every partition
 * is revoked, and a newly assigned one starts at its committed offset, so whatever was not
 * committed is read again, by us or by the new owner.
 */
export class ClickHouseSink {
  readonly metrics = new SinkMetrics();
  private readonly consumer: Kafka.KafkaConsumer;
  private readonly ch: ClickHouseClient;
  private readonly ownsClient: boolean;
  private readonly topic: string;
  /** The database identifier, validated and quoted; tables are RowBatch's. */
  private readonly database: string;
  private readonly shutdownGraceMs: number;
  private readonly batch = new RowBatch();
  /** Offsets of rows ClickHouse has acknowledged whose commit failed; retried, dropped on rebalance. */
  private readonly pendingCommit = new Map<number, number>();
  private readonly lastCommitted = new Map<number, number>();
  private readonly rebalances: RebalanceEvent[] = [];
  /** Partitions as this loop sees them: assigned when it handled the assign event, cleared on revoke. */
  private assigned = new Set<number>();
  /** Bumped whenever a rebalance is handled: a batch from an older generation is void. */
  private generation = 0;
  private paused = false;
  private stopping = false;
  private stopRequestedAt = 0;
  private closing = false;
  /** A batch was left uncommitted at shutdown because ClickHouse did not take it in time. */
  private abandoned = false;
  private loopDone: Promise<void> | undefined;
  private outage: { since: number; attempts: number } | undefined;
  private lastCommitAttemptAt = 0;
  private lastLagAt = 0;
  private lastConsumeErrorLogAt = 0;
  private lastKafkaErrorLogAt = 0;
  private rollingUp: Promise<void> | null = null;
  private rollUpAgain = false;

  constructor(private readonly config: TallyConfig, private readonly log: Logger, opts: ClickHouseSinkOptions = {}) {
    this.topic = config.topics.counts;
    this.database = identifier(config.clickhouse.database);
    this.shutdownGraceMs = opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
    this.ownsClient = opts.clickhouse === undefined;
    // The client's per-request error lines become debug logs: the sink reports an outage itself, once.
    this.ch = opts.clickhouse ?? createClickHouse(config, { application: 'tally-sink', log });
    this.consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': config.kafka.brokers,
      'group.id': config.groups.sink,
      'client.id': `tally-sink-${config.instanceId}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      // Eager: every rebalance revokes everything, which is what discarding the whole batch assumes.
      'partition.assignment.strategy': 'range',
      // EOF makes consume(n) return as soon as it is caught up, so a trickle cannot hold a batch open.
      'enable.partition.eof': true,
      'session.timeout.ms': 10_000,
      'heartbeat.interval.ms': 1_000,
      'max.poll.interval.ms': 300_000,
      'fetch.wait.max.ms': 50,
      'queued.max.messages.kbytes': 65_536,
      rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => this.onRebalance(err, assignment),
      log_level: 3,
    }, { 'auto.offset.reset': 'earliest' });
    this.consumer.on('event.error', (err) => {
      const now = Date.now();
      if (now - this.lastKafkaErrorLogAt < ERROR_LOG_EVERY_MS) return;
      this.lastKafkaErrorLogAt = now;
      this.log.warn({ err: err.message, code: err.code }, 'sink.kafka_error');
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(kafkaError('consumer connect', err)) : resolve())));
    this.consumer.subscribe([this.topic]);
    this.log.info({
      topic: this.topic, group: this.config.groups.sink, database: this.database,
      batchRows: this.config.sink.batchRows, batchMs: this.config.sink.batchMs,
    }, 'sink.started');
    this.loopDone = this.runLoop();
    this.rollUp(); // periods that became final while no sink ran
  }

  /** Flushes the current batch (insert, then commit), leaves the group and disconnects. */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.stopRequestedAt = Date.now();
    }
    await this.rollingUp?.catch(() => undefined);
    await this.loopDone?.catch(() => undefined);
  }

  /** Resolves when the loop ends; rejects if it crashed (a fatal Kafka error). */
  get done(): Promise<void> {
    return this.loopDone ?? Promise.resolve();
  }

  private onRebalance(err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]): void {
    const partitions = assignment.map((a) => a.partition);
    if (this.closing) {
      // Leaving the group at disconnect: nothing left to flush, let librdkafka finish.
      try {
        if (err.code === ERR__REVOKE_PARTITIONS) this.consumer.unassign();
      } catch { /* already closed */ }
      return;
    }
    if (err.code === ERR__ASSIGN_PARTITIONS) this.rebalances.push({ kind: 'assign', partitions });
    else if (err.code === ERR__REVOKE_PARTITIONS) this.rebalances.push({ kind: 'revoke', partitions });
    else {
      // librdkafka wants an unassign after a failed rebalance: drop everything, as on a revoke.
      this.log.error({ err: err.message, code: err.code }, 'sink.rebalance_error');
      this.rebalances.push({ kind: 'revoke', partitions: [...this.assigned] });
    }
  }

  private async runLoop(): Promise<void> {
    try {
      while (!this.stopping) {
        const msgs = await this.consume(this.consumeCount(), this.consumeTimeout());
        this.accept(msgs);
        this.handleRebalances();
        if (this.flushDue()) await this.flush();
        else if (this.batch.isEmpty && this.pendingCommit.size > 0 && Date.now() - this.lastCommitAttemptAt >= COMMIT_RETRY_MS) this.commit([]);
        this.updateLag(false);
      }
      this.handleRebalances();
      await this.flush();
      if (this.pendingCommit.size > 0) this.commit([]);
      if (!this.abandoned && this.pendingCommit.size === 0) this.log.info('sink.stopped_cleanly');
      // Not an error: what was not committed is read again by the next owner of the partitions.
      else this.log.warn({ pendingCommit: Object.fromEntries(this.pendingCommit) }, 'sink.stopped_with_uncommitted_records');
    } finally {
      this.closing = true;
      this.metrics.waitingForClickHouse.set(0);
      await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
      if (this.ownsClient) await this.ch.close().catch(() => undefined);
    }
  }

  private consumeCount(): number {
    return Math.max(1, Math.min(MAX_CONSUME, this.config.sink.batchRows - this.batch.rowCount));
  }

  private consumeTimeout(): number {
    const first = this.batch.firstRecordAt;
    if (first === undefined) return POLL_MS;
    return Math.max(1, Math.min(POLL_MS, this.config.sink.batchMs - (Date.now() - first)));
  }

  private flushDue(): boolean {
    const first = this.batch.firstRecordAt;
    if (first === undefined) return false;
    return this.batch.rowCount >= this.config.sink.batchRows || Date.now() - first >= this.config.sink.batchMs;
  }

  private consume(n: number, timeoutMs: number): Promise<Kafka.Message[]> {
    return new Promise((resolve, reject) => {
      this.consumer.setDefaultConsumeTimeout(timeoutMs);
      this.consumer.consume(n, (err, msgs) => {
        if (!err) return resolve(msgs);
        if (err.isFatal) return reject(kafkaError('consume', err));
        const now = Date.now();
        if (now - this.lastConsumeErrorLogAt >= ERROR_LOG_EVERY_MS) {
          this.lastConsumeErrorLogAt = now;
          this.log.warn({ err: err.message, code: err.code }, 'sink.consume_error');
        }
        setTimeout(() => resolve([]), POLL_MS);
      });
    });
  }

  /** Adds consumed records to the batch; records of partitions this loop does not own are left for their owner. */
  private accept(msgs: Kafka.Message[]): void {
    if (msgs.length === 0) return;
    const now = Date.now();
    for (const m of msgs) {
      if (!this.assigned.has(m.partition)) continue;
      const outcome = this.batch.add(m.partition, m.offset, m.value, now);
      this.metrics.recordsConsumed.inc({ kind: outcome.kind });
      if (outcome.kind === 'poison') {
        this.metrics.poisonRecords.inc({ reason: outcome.reason });
        this.log.error({
          topic: m.topic, partition: m.partition, offset: m.offset, reason: outcome.reason,
          key: m.key === undefined || m.key === null ? null : String(m.key).slice(0, 200),
          valuePrefix: m.value ? m.value.subarray(0, 120).toString('utf8') : null,
        }, 'sink.poison_record');
      }
    }
  }

  private handleRebalances(): void {
    while (this.rebalances.length > 0) {
      const ev = this.rebalances.shift() as RebalanceEvent;
      this.metrics.rebalances.inc({ kind: ev.kind });
      this.generation++;
      if (!this.batch.isEmpty || this.pendingCommit.size > 0) {
        this.log.info({ kind: ev.kind, records: this.batch.records, offsets: this.batch.offsets() }, 'sink.batch_discarded_on_rebalance');
        this.metrics.batches.inc({ outcome: 'discarded' });
      }
      this.batch.clear();
      this.pendingCommit.clear();
      this.paused = false;
      this.metrics.lag.reset();
      if (ev.kind === 'revoke') {
        this.log.info({ partitions: ev.partitions }, 'sink.partitions_revoked');
        this.assigned = new Set();
        this.lastCommitted.clear();
        this.consumer.unassign();
      } else {
        this.log.info({ partitions: ev.partitions }, 'sink.partitions_assigned');
        this.assigned = new Set(ev.partitions);
        // No offset: librdkafka starts each partition at its committed offset (or earliest).
        this.consumer.assign(ev.partitions.map((partition) => ({ topic: this.topic, partition })));
        this.loadCommitted(ev.partitions, this.generation);
      }
      this.metrics.assigned.set(this.assigned.size);
    }
  }

  /** Committed offsets of newly assigned partitions, for the lag gauge only. */
  private loadCommitted(partitions: number[], generation: number): void {
    if (partitions.length === 0) return;
    this.consumer.committed(partitions.map((partition) => ({ topic: this.topic, partition })), 10_000, (err, tps) => {
      if (err || generation !== this.generation) return;
      for (const tp of tps) if (!this.lastCommitted.has(tp.partition)) this.lastCommitted.set(tp.partition, Math.max(0, tp.offset));
      this.updateLag(true);
    });
  }

  /** Inserts the batch (retrying until ClickHouse takes it, a rebalance voids it, or the shutdown grace ends), then commits its offsets. */
  private async flush(): Promise<void> {
    if (this.batch.isEmpty) return;
    if (!(await this.insertWithRetry())) return;
    this.metrics.batches.inc({ outcome: 'inserted' });
    const offsets = this.batch.offsets();
    const closed = this.batch.closeCount > 0;
    this.batch.clear();
    this.commit(offsets);
    this.updateLag(true);
    if (closed) this.rollUp();
  }

  /** Rolls newly final periods up into billing_statement, in the background, one run at a time. */
  private rollUp(): void {
    if (this.rollingUp !== null) {
      this.rollUpAgain = true;
      return;
    }
    this.rollingUp = rollUpFinalPeriods(this.ch, this.config.clickhouse.database, this.config.partitions, Date.now())
      .then((periods) => {
        if (periods.length > 0) this.log.info({ periods: periods.map((p) => new Date(p).toISOString()) }, 'sink.periods_final');
      }, (err: unknown) => this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'sink.rollup_failed'))
      .finally(() => {
        this.rollingUp = null;
        if (this.rollUpAgain) {
          this.rollUpAgain = false;
          this.rollUp();
        }
      });
  }

  /**
   * True once ClickHouse acknowledged the whole batch. False if a rebalance voided the batch
   * meanwhile, or a stop request's grace ran out (the batch is then left uncommitted: re-read later).
   */
  private async insertWithRetry(): Promise<boolean> {
    const generation = this.generation;
    let backoff = BACKOFF_FIRST_MS;
    for (;;) {
      const inserts = this.batch.inserts();
      const rows = inserts.reduce((n, t) => n + t.values.length, 0);
      const t0 = process.hrtime.bigint();
      try {
        // In RowBatch.inserts' order: nothing lands before what it depends on.
        for (const t of inserts) await this.ch.insert({ table: `${this.database}.${t.table}`, values: t.values, format: 'JSONEachRow', columns: t.columns as [string, ...string[]] });
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        if (rows > 0) this.metrics.insertSeconds.observe(seconds);
        for (const t of inserts) this.metrics.rowsInserted.inc({ table: t.table }, t.values.length);
        this.metrics.lastInsertTimestamp.set(Date.now() / 1000);
        this.log.debug({ rows, tables: inserts.map((t) => t.table), records: this.batch.records, ms: Math.round(seconds * 1000) }, 'sink.batch_inserted');
        this.endOutage();
        return true;
      } catch (err) {
        this.onInsertFailure(err, rows);
      }
      // Back off, still polling the consumer (paused: no records) so rebalances and the poll interval are served.
      const until = Date.now() + backoff;
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      while (Date.now() < until) {
        if (this.stopping && Date.now() - this.stopRequestedAt >= this.shutdownGraceMs) {
          this.log.warn({ records: this.batch.records, offsets: this.batch.offsets() }, 'sink.stopped_with_unflushed_batch');
          this.metrics.batches.inc({ outcome: 'abandoned' });
          this.abandoned = true;
          this.metrics.waitingForClickHouse.set(0);
          this.batch.clear();
          return false;
        }
        const msgs = await this.consume(MAX_CONSUME, Math.max(1, Math.min(POLL_MS, until - Date.now())));
        this.accept(msgs);
        this.handleRebalances();
        if (this.generation !== generation) {
          this.metrics.waitingForClickHouse.set(0);
          return false;
        }
      }
    }
  }

  private onInsertFailure(err: unknown, rows: number): void {
    this.metrics.insertFailures.inc();
    this.metrics.waitingForClickHouse.set(1);
    const message = err instanceof Error ? err.message : String(err);
    if (this.outage === undefined) {
      this.outage = { since: Date.now(), attempts: 0 };
      this.log.warn({ err: message, rows, records: this.batch.records }, 'sink.clickhouse_unavailable');
    } else {
      this.log.debug({ err: message, attempt: this.outage.attempts + 1 }, 'sink.insert_retry');
    }
    this.outage.attempts++;
    this.pause();
  }

  private endOutage(): void {
    this.metrics.waitingForClickHouse.set(0);
    if (this.outage !== undefined) {
      this.log.info({ downMs: Date.now() - this.outage.since, failedAttempts: this.outage.attempts }, 'sink.clickhouse_recovered');
      this.outage = undefined;
    }
    this.resume();
  }

  private pause(): void {
    if (this.paused || this.assigned.size === 0) return;
    try {
      this.consumer.pause([...this.assigned].map((partition) => ({ topic: this.topic, partition })));
      this.paused = true;
    } catch (err) {
      this.log.warn({ err: String(err) }, 'sink.pause_failed');
    }
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    try {
      this.consumer.resume([...this.assigned].map((partition) => ({ topic: this.topic, partition })));
    } catch (err) {
      this.log.warn({ err: String(err) }, 'sink.resume_failed');
    }
  }

  /**
   * Commits (synchronously) `offsets` plus any earlier ones whose commit failed. Only called
   * after ClickHouse acknowledged the rows up to these offsets.
   */
  private commit(offsets: Array<{ partition: number; offset: number }>): void {
    for (const o of offsets) this.pendingCommit.set(o.partition, Math.max(o.offset, this.pendingCommit.get(o.partition) ?? 0));
    if (this.pendingCommit.size === 0) return;
    const tps = [...this.pendingCommit].map(([partition, offset]) => ({ topic: this.topic, partition, offset }));
    this.lastCommitAttemptAt = Date.now();
    try {
      this.consumer.commitSync(tps);
      for (const tp of tps) this.lastCommitted.set(tp.partition, tp.offset);
      this.pendingCommit.clear();
    } catch (err) {
      // Typically a rebalance in progress: the handler will drop these, and the rows are re-read.
      this.metrics.commitFailures.inc();
      this.log.warn({ err: isKafkaError(err) ? err.message : String(err), code: isKafkaError(err) ? err.code : undefined, offsets: tps }, 'sink.commit_failed');
    }
  }

  private updateLag(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastLagAt < LAG_EVERY_MS) return;
    this.lastLagAt = now;
    for (const p of this.assigned) {
      const base = this.lastCommitted.get(p);
      if (base === undefined) continue;
      try {
        const wm = this.consumer.getWatermarkOffsets(this.topic, p);
        if (wm.highOffset >= 0) this.metrics.lag.set({ partition: String(p) }, Math.max(0, wm.highOffset - base));
      } catch {
        /* nothing fetched yet for this partition: lag unknown */
      }
    }
  }
}
