import Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { kafkaError, TaskCorruptedError, TaskMigratedError } from '../errors/index.js';
import { ensureTopics, type OutgoingRecord } from '../kafka/index.js';
import type { Logger } from '../observability/index.js';
import { AggregatorMetrics } from './aggregator-metrics.js';
import type { WindowSettings } from './core/index.js';
import { AtLeastOnceWriter } from './at-least-once-writer.js';
import { ConsumeBatchSize } from './consume-batch-size.js';
import type { CommitWriter } from './commit-writer.js';
import { PartitionTask, type RecordOutcome, type TaskCommit } from './partition-task.js';
import { restorePartitions } from './restore.js';
import { TransactionalProducer } from './transactional-producer.js';

const { ERR__ASSIGN_PARTITIONS, ERR__REVOKE_PARTITIONS } = Kafka.CODES.ERRORS;
/** Bounds a transaction's size (and a dedup chunk's: 16 bytes an id) when catching up. */
const MAX_EVENTS_PER_TRANSACTION = 20_000;
/** A source end older than this is unknown: an idle claim cannot be checked against it, so it holds. */
const SOURCE_END_FRESH_MS = 5_000;

type RebalanceEvent = { kind: 'assign' | 'revoke'; partitions: number[] };

/** A task's committed offsets: its source partition of `impressions` and its repartition channel. */
interface TaskOffsets { source: number; channel: number }

/**
 * The aggregator's loop, shaped like Kafka Streams' StreamThread: handle rebalances (restore on
 * assign, commit and drop on revoke), poll a batch, process it into the partition tasks, and
 * every commit interval write everything — window rows, dedup deltas, dead letters, forwards and
 * the input offsets — in one Kafka transaction. Any failed transaction drops the in-memory state
 * and restores it from Kafka, so memory never runs ahead of what Kafka committed.
 *
 * One transaction is in flight at a time, and the loop keeps processing while the broker commits
 * it: prepareCommit cut the tasks' changes, so what arrives meanwhile goes in the next one. If the
 * transaction fails, that later work is dropped with the rest and re-read after the restore.
 */
export class Aggregator {
  private readonly consumer: Kafka.KafkaConsumer;
  private readonly writer: CommitWriter;
  private readonly settings: WindowSettings;
  private readonly tasks = new Map<number, PartitionTask>();
  private readonly rebalances: RebalanceEvent[] = [];
  private readonly batchSize = new ConsumeBatchSize();
  private stopping = false;
  private loopRunning = false;
  private loopDone: Promise<void> | undefined;
  private lastCommitAt = Date.now();
  private processedSinceCommit = 0;
  /** The transaction being committed, if any; settleCommit waits for it and handles its failure. */
  private inFlight: Promise<void> | null = null;
  private failedCommit: unknown = null;
  private gaugesAt = 0;
  /** Every source partition's end offset as last seen (queried about once a second), for idle checks. */
  private readonly sourceEnds = new Map<number, { end: number; at: number }>();
  private endsAt = 0;
  private endsInFlight = false;

  constructor(
    private readonly config: TallyConfig,
    private readonly log: Logger,
    readonly metrics: AggregatorMetrics = new AggregatorMetrics(),
  ) {
    this.settings = {
      windowMs: config.windowMs,
      outOfOrdernessMs: config.outOfOrdernessMs,
      allowedLatenessMs: config.allowedLatenessMs,
      dedupHorizonMs: config.dedupHorizonMs,
      maxClockSkewMs: config.maxClockSkewMs,
      partitions: config.partitions,
      idleTimeoutMs: config.idleTimeoutMs,
    };
    this.consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': config.kafka.brokers,
      'group.id': config.groups.aggregator,
      'client.id': `tally-aggregator-${config.instanceId}`,
      // Static membership: a restarted instance takes its partitions back at once instead of
      // waiting out the dead member's session; a second process with the same id is fenced.
      'group.instance.id': `tally-aggregator-${config.instanceId}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      // range gives partition p of both input topics (same partition count) to the same member:
      // a task needs its source and its repartition channel together.
      'partition.assignment.strategy': 'range',
      'session.timeout.ms': 10_000,
      'heartbeat.interval.ms': 1_000,
      'max.poll.interval.ms': 300_000,
      'fetch.wait.max.ms': 50,
      // node-rdkafka's consume(n) waits its timeout per record; at a partition's end (EOF) it
      // returns at once, so a steady trickle does not hold a batch (and the commit) back.
      'enable.partition.eof': true,
      'queued.max.messages.kbytes': 65_536,
      rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => {
        const partitions = [...new Set(assignment.map((a) => a.partition))].sort((a, b) => a - b);
        if (!this.loopRunning) {
          // Leaving the group during disconnect: nothing to commit any more, just let go.
          if (err.code === ERR__REVOKE_PARTITIONS) this.consumer.unassign();
          return;
        }
        if (err.code === ERR__ASSIGN_PARTITIONS) this.rebalances.push({ kind: 'assign', partitions });
        else if (err.code === ERR__REVOKE_PARTITIONS) this.rebalances.push({ kind: 'revoke', partitions });
        else this.log.error({ err: err.message }, 'aggregator.rebalance_error');
      },
      log_level: 3,
    }, { 'auto.offset.reset': 'earliest' });
    this.writer = config.processingGuarantee === 'exactly_once'
      ? new TransactionalProducer(config.kafka.brokers, `${config.groups.aggregator}-${config.instanceId}`, config.transactionTimeoutMs, log)
      : new AtLeastOnceWriter(config.kafka.brokers);
  }

  async start(): Promise<void> {
    // The repartition topic is internal: created here if missing; every topic's partition count is checked.
    await ensureTopics(this.config);
    await this.writer.init();
    await new Promise<void>((resolve, reject) => this.consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(kafkaError('consumer connect', err)) : resolve())));
    this.consumer.setDefaultConsumeTimeout(Math.max(5, Math.min(20, this.config.commitIntervalMs)));
    this.consumer.subscribe([this.config.topics.impressions, this.config.topics.repartition]);
    this.log.info({ guarantee: this.writer.description, group: this.config.groups.aggregator }, 'aggregator.started');
    this.loopDone = this.runLoop();
  }

  /** Finishes the current transaction, leaves the group and disconnects. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loopDone;
  }

  /** Resolves when the loop ends; rejects if it crashed. */
  get done(): Promise<void> {
    return this.loopDone ?? Promise.resolve();
  }

  private async runLoop(): Promise<void> {
    this.loopRunning = true;
    try {
      while (!this.stopping) {
        await this.handleRebalances();
        const batch = await this.consume();
        // Read past a failed transaction: dropped with everything since, re-read after the restore.
        if (this.failedCommit !== null) {
          await this.settleCommit();
          continue;
        }
        this.processBatch(batch);
        if (!this.commitDue()) continue;
        // A backlog must not grow the next transaction without bound while one is committing.
        if (this.inFlight !== null && this.processedSinceCommit < MAX_EVENTS_PER_TRANSACTION) continue;
        await this.settleCommit();
        this.beginCommit();
      }
      await this.handleRebalances();
      await this.commitOrRecover();
      this.log.info('aggregator.stopped_cleanly');
    } finally {
      this.loopRunning = false;
      await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
      await this.writer.disconnect();
    }
  }

  private consume(): Promise<Kafka.Message[]> {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      this.consumer.consume(this.batchSize.next, (err, msgs) => {
        if (err) return reject(kafkaError('consume', err));
        this.batchSize.observe(msgs.length, performance.now() - t0);
        resolve(msgs);
      });
    });
  }

  private processBatch(batch: Kafka.Message[]): void {
    if (batch.length === 0) return;
    const now = Date.now();
    const source = this.config.topics.impressions;
    let consumed = 0;
    let counted = 0;
    let duplicates = 0;
    let forwarded = 0;
    let markers = 0;
    let deadLetters: RecordOutcome[] | undefined;
    for (const msg of batch) {
      const task = this.tasks.get(msg.partition);
      if (task === undefined) continue; // revoked while in flight: skip; never committed
      let outcome: RecordOutcome;
      if (msg.topic === source) {
        if (msg.offset < task.nextSourceOffset) continue; // already processed (before a rewind)
        outcome = task.processSource(msg, now);
      } else {
        if (msg.offset < task.nextChannelOffset) continue;
        outcome = task.processChannel(msg, now);
      }
      if (outcome === 'marker') {
        markers++;
        continue;
      }
      consumed++;
      if (outcome === 'counted') counted++;
      else if (outcome === 'duplicate') duplicates++;
      else if (outcome === 'forwarded') forwarded++;
      else (deadLetters ??= []).push(outcome);
    }
    // Metrics once per batch: a labelled counter per record cost more than the dedup itself.
    const m = this.metrics;
    m.consumed.inc(consumed);
    m.counted.inc(counted);
    m.duplicates.inc(duplicates);
    m.forwarded.inc(forwarded);
    m.markers.inc(markers);
    for (const reason of deadLetters ?? []) m.deadLetters.inc({ reason });
    this.processedSinceCommit += batch.length;
  }

  private commitDue(): boolean {
    return Date.now() - this.lastCommitAt >= this.config.commitIntervalMs || this.processedSinceCommit >= MAX_EVENTS_PER_TRANSACTION;
  }

  /**
   * Cuts every task's changes into one transaction and starts committing it, without waiting:
   * settleCommit waits. The caller has settled the previous one.
   */
  private beginCommit(): void {
    const now = Date.now();
    this.lastCommitAt = now;
    this.processedSinceCommit = 0;
    // Gauges once a second: getWatermarkOffsets takes librdkafka's lock, ~0.1 ms a partition.
    if (now - this.gaugesAt >= 1000) {
      this.gaugesAt = now;
      this.updateGauges();
    }
    this.refreshSourceEnds(now);
    const ends = new Map<number, number>();
    for (const [p, e] of this.sourceEnds) if (now - e.at <= SOURCE_END_FRESH_MS) ends.set(p, e.end);
    const parts: Array<{ task: PartitionTask; commit: TaskCommit }> = [];
    for (const task of this.tasks.values()) {
      // Idle: caught up and no record has moved the source's event time for the idle timeout.
      const idle = now - task.lastSourceEventAt >= this.config.idleTimeoutMs && this.caughtUp(task);
      const commit = task.prepareCommit(now, idle, ends);
      if (commit !== null) parts.push({ task, commit });
    }
    if (parts.length === 0) return;
    const { impressions, repartition } = this.config.topics;
    const records: OutgoingRecord[] = [];
    const offsets: Kafka.TopicPartitionOffset[] = [];
    for (const { task, commit } of parts) {
      for (const r of commit.records) records.push(r);
      offsets.push({ topic: impressions, partition: task.partition, offset: commit.sourceOffset });
      offsets.push({ topic: repartition, partition: task.partition, offset: commit.channelOffset });
    }
    const stopTimer = this.metrics.commitSeconds.startTimer();
    this.inFlight = this.writer.commit(records, offsets, this.consumer).then(() => {
      stopTimer();
      for (const { task, commit } of parts) task.postCommit(commit);
      this.metrics.transactions.inc({ outcome: 'committed' });
      this.metrics.lastCommitTimestamp.set(Date.now() / 1000);
    }, (err: unknown) => {
      this.metrics.transactions.inc({ outcome: 'aborted' });
      this.failedCommit = err;
    }).finally(() => {
      this.inFlight = null;
    });
  }

  /** Waits for the transaction in flight; if it failed, restores every task from Kafka. */
  private async settleCommit(): Promise<void> {
    if (this.inFlight !== null) await this.inFlight;
    const err = this.failedCommit;
    if (err === null) return;
    this.failedCommit = null;
    if (!(err instanceof TaskCorruptedError || err instanceof TaskMigratedError)) throw err;
    this.log.warn({ err: err.message, kind: err.name, partitions: [...this.tasks.keys()] }, 'aggregator.transaction_failed_restoring');
    await this.reinitialize([...this.tasks.keys()], 'seek');
  }

  /** Commits everything processed so far and waits for it (on revoke and on stop). */
  private async commitOrRecover(): Promise<void> {
    await this.settleCommit();
    this.beginCommit();
    await this.settleCommit();
  }

  private async handleRebalances(): Promise<void> {
    if (this.rebalances.length > 0) await this.settleCommit();
    while (this.rebalances.length > 0) {
      const ev = this.rebalances.shift() as RebalanceEvent;
      if (ev.kind === 'revoke') {
        this.log.info({ partitions: ev.partitions }, 'aggregator.partitions_revoked');
        // Commit what the revoked tasks hold; if that fails the new owner re-reads it anyway.
        if (!this.stopping || this.tasks.size > 0) await this.commitOrRecover().catch((err: unknown) => this.log.warn({ err: String(err) }, 'aggregator.revoke_commit_failed'));
        this.tasks.clear();
        this.consumer.unassign();
      } else {
        this.log.info({ partitions: ev.partitions }, 'aggregator.partitions_assigned');
        await this.reinitialize(ev.partitions, 'assign');
      }
      this.metrics.assigned.set(this.tasks.size);
    }
  }

  /**
   * (Re)builds the tasks of `partitions`: committed offsets first (read_committed asks for stable
   * offsets, so a pending transaction on them finishes before we read), then their state from the
   * changelog, then the consumer is positioned at the committed offsets.
   */
  private async reinitialize(partitions: number[], how: 'assign' | 'seek'): Promise<void> {
    for (const p of partitions) this.tasks.delete(p);
    if (partitions.length === 0) {
      if (how === 'assign') this.consumer.assign([]);
      return;
    }
    const { impressions, repartition } = this.config.topics;
    const committed = await this.committedOffsets(partitions);
    const stopTimer = this.metrics.restoreSeconds.startTimer();
    const { states, stats } = await restorePartitions(this.config, this.settings, partitions);
    stopTimer();
    this.log.info({ ...stats, partitions }, 'aggregator.restored');
    const now = Date.now();
    for (const p of partitions) {
      const offsets = committed.get(p) ?? { source: 0, channel: 0 };
      this.tasks.set(p, new PartitionTask(p, states.get(p)!, offsets, this.config.topics, this.config.partitions, now));
    }
    // An offset never committed (-2) means the beginning; the task's own count starts at 0 all the same.
    const positions = partitions.flatMap((p) => [
      { topic: impressions, partition: p, offset: committed.get(p)?.source ?? -2 },
      { topic: repartition, partition: p, offset: committed.get(p)?.channel ?? -2 },
    ]);
    if (how === 'assign') {
      this.consumer.assign(positions);
    } else {
      for (const tp of positions) await this.seek({ ...tp, offset: Math.max(0, tp.offset) });
    }
  }

  /** Committed offsets of both inputs of each partition (missing ones are 0: read from the beginning). */
  private async committedOffsets(partitions: number[]): Promise<Map<number, TaskOffsets>> {
    const { impressions, repartition } = this.config.topics;
    const request = partitions.flatMap((partition) => [{ topic: impressions, partition }, { topic: repartition, partition }]);
    for (let attempt = 1; ; attempt++) {
      try {
        const list = await new Promise<Kafka.TopicPartitionOffset[]>((resolve, reject) =>
          this.consumer.committed(request, 30_000, (err, tps) => (err ? reject(kafkaError('committed', err)) : resolve(tps))));
        const out = new Map<number, TaskOffsets>();
        for (const tp of list) {
          if (tp.offset < 0) continue;
          const o = out.get(tp.partition) ?? { source: 0, channel: 0 };
          if (tp.topic === impressions) o.source = tp.offset;
          else o.channel = tp.offset;
          out.set(tp.partition, o);
        }
        return out;
      } catch (err) {
        // UNSTABLE_OFFSET_COMMIT while a previous owner's transaction resolves, or a coordinator move.
        if (attempt >= 30) throw err;
        this.log.warn({ err: String(err), attempt }, 'aggregator.committed_offsets_retry');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async seek(tp: Kafka.TopicPartitionOffset): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => this.consumer.seek(tp, 10_000, (err) => (err ? reject(kafkaError('seek', err)) : resolve())));
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /**
   * Queries every source partition's end (in the background, about once a second): an input that
   * said it is idle counts as idle only while its source has read to that end. A source whose
   * consumer stalled (a paused or dead process) while records arrive holds everyone back.
   */
  private refreshSourceEnds(now: number): void {
    if (this.endsInFlight || now - this.endsAt < 1000) return;
    this.endsInFlight = true;
    this.endsAt = now;
    const topic = this.config.topics.impressions;
    const queries = Array.from({ length: this.config.partitions }, (_, p) => new Promise<void>((resolve) => {
      this.consumer.queryWatermarkOffsets(topic, p, 5_000, (err, o) => {
        if (!err) this.sourceEnds.set(p, { end: o.highOffset, at: Date.now() });
        resolve();
      });
    }));
    void Promise.all(queries).finally(() => { this.endsInFlight = false; });
  }

  /** At the end of the source partition as last fetched (a transaction marker may sit after the last record). */
  private caughtUp(task: PartitionTask): boolean {
    try {
      return this.consumer.getWatermarkOffsets(this.config.topics.impressions, task.partition).highOffset - task.nextSourceOffset <= 1;
    } catch {
      return false;
    }
  }

  private updateGauges(): void {
    let windows = 0;
    let ids = 0;
    let bytes = 0;
    for (const task of this.tasks.values()) {
      const s = task.state;
      windows += s.windowsOpen;
      ids += s.idsHeld;
      bytes += s.dedupBytes;
      const partition = String(task.partition);
      this.metrics.watermark.set({ partition }, s.watermark);
      s.inputMarks.forEach((m, input) => {
        this.metrics.inputWatermark.set({ partition, input: String(input) }, m.watermark);
        this.metrics.inputIdle.set({ partition, input: String(input) }, m.idle ? 1 : 0);
      });
      try {
        const wm = this.consumer.getWatermarkOffsets(this.config.topics.impressions, task.partition);
        this.metrics.lag.set({ partition }, Math.max(0, wm.highOffset - task.nextSourceOffset));
      } catch {
        /* no fetch yet for this partition: lag unknown */
      }
    }
    this.metrics.windowsOpen.set(windows);
    this.metrics.idsHeld.set(ids);
    this.metrics.dedupBytes.set(bytes);
  }
}
