import type Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { TaskCorruptedError, TaskMigratedError } from '../errors/index.js';
import { Consumer, ensureTopics, OFFSET_BEGINNING, RebalanceQueue, rebalanceProtocolOf, retry, type OutgoingRecord, type RebalanceEvent, type RebalanceProtocol } from '../kafka/index.js';
import type { Logger } from '../observability/index.js';
import { dimensionFields, type DimensionFields } from '../impression/index.js';
import { AggregatorMetrics } from './aggregator-metrics.js';
import { committedOffsets } from './committed-offsets.js';
import { ConsumeBatchSize } from './consume-batch-size.js';
import { aggregatorConsumerSettings } from './consumer-settings.js';
import type { WindowSettings } from './core/index.js';
import { PartitionTask, type RecordOutcome, type TaskCommit } from './partition-task.js';
import { processingGuarantee } from './processing-guarantee.js';
import { planRebalance } from './rebalance-plan.js';
import { restorePartitions } from './restore.js';
import { SourceEnds } from './source-ends.js';
import { TaskGauges } from './task-gauges.js';
import { TransactionOwner } from './transaction-owner.js';
import { windowSettingsOf } from './window-settings.js';

/**
 * A transactional call librdkafka has not answered this long after the transaction timeout (its own
 * timeout for the call) is stuck: no call can do anything useful for a transaction the coordinator
 * has aborted by then. The producer is replaced (TransactionOwner's callDeadlineMs).
 */
const STUCK_CALL_GRACE_MS = 5_000;

/** Bounds a transaction's size (and a dedup chunk's: 16 bytes an id) when catching up. */
const MAX_EVENTS_PER_TRANSACTION = 20_000;

/**
 * The aggregator's loop, shaped like Kafka Streams' StreamThread: handle rebalances (restore on
 * assign, commit and drop on revoke), poll a batch, process it into the partition tasks, and
 * every commit interval write everything — window rows, dedup deltas, dead letters, forwards and
 * the input offsets — in one Kafka transaction, which the TransactionOwner runs. A failed
 * transaction drops the in-memory state, so memory never runs ahead of what Kafka committed: the
 * tasks are restored from Kafka at once (task corrupted), or when the group assigns them again
 * (task migrated).
 *
 * One transaction is in flight at a time, and the loop keeps processing while the broker commits
 * it: prepareCommit cut the tasks' changes, so what arrives meanwhile goes in the next one. If the
 * transaction fails, that later work is dropped with the rest and re-read after the recovery.
 */
export class Aggregator {
  private readonly consumer: Consumer;
  private readonly rebalances: RebalanceQueue;
  private readonly transactions: TransactionOwner;
  private readonly guarantee: string;
  private readonly settings: WindowSettings;
  private readonly dimensionFields: DimensionFields;
  /** What the group assigns: the source topic only; each task's repartition channel follows its source partition. */
  private readonly subscription: string[];
  private readonly tasks = new Map<number, PartitionTask>();
  private readonly batchSize = new ConsumeBatchSize();
  private readonly pollTimeoutMs: number;
  private readonly sourceEnds: SourceEnds;
  private readonly gauges: TaskGauges;
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private lastCommitAt = Date.now();
  private processedSinceCommit = 0;

  constructor(
    private readonly config: TallyConfig,
    private readonly log: Logger,
    readonly metrics: AggregatorMetrics = new AggregatorMetrics(),
  ) {
    const { impressions } = config.topics;
    this.settings = windowSettingsOf(config);
    this.dimensionFields = dimensionFields(config.dimensions);
    // A task is partition p of both inputs. The group assigns only the source's partitions and the
    // loop adds the channel's partition p itself: no assignor but range keeps two topics'
    // partitions together, and cooperative-sticky moves topic-partitions one by one.
    this.subscription = [impressions];
    this.rebalances = new RebalanceQueue((err) => log.error({ err: err.message }, 'aggregator.rebalance_error'));
    this.consumer = new Consumer(aggregatorConsumerSettings(config, this.rebalances));
    const guarantee = processingGuarantee(config, this.consumer.client);
    this.guarantee = guarantee.description;
    this.transactions = new TransactionOwner(guarantee.newClient, log, metrics, { callDeadlineMs: config.transactionTimeoutMs + STUCK_CALL_GRACE_MS });
    this.pollTimeoutMs = Math.max(5, Math.min(20, config.commitIntervalMs));
    this.sourceEnds = new SourceEnds(this.consumer, impressions, config.partitions, config.idleTimeoutMs);
    this.gauges = new TaskGauges(metrics, this.consumer, impressions);
  }

  async start(): Promise<void> {
    // The repartition topic is internal: created here if missing; every topic's partition count is checked.
    await ensureTopics(this.config);
    await this.transactions.init();
    await this.consumer.connect();
    this.consumer.client.subscribe(this.subscription);
    this.log.info({ guarantee: this.guarantee, group: this.config.groups.aggregator, assignment: this.config.assignmentStrategy }, 'aggregator.started');
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
    try {
      while (!this.stopping) {
        await this.handleRebalances();
        const batch = await this.poll();
        // Read past a failed transaction: dropped with everything since, re-read after the recovery.
        if (this.transactions.failed) {
          await this.settle();
          continue;
        }
        this.process(batch);
        await this.maybeCommit();
      }
      await this.handleRebalances();
      await this.commitAll('aggregator.final_commit_failed');
      this.log.info('aggregator.stopped_cleanly');
    } finally {
      // Leaving the group during disconnect: nothing to commit any more, revocations just let go.
      this.rebalances.close();
      await this.consumer.disconnect();
      await this.transactions.close();
    }
  }

  private async poll(): Promise<Kafka.Message[]> {
    const t0 = performance.now();
    const batch = await this.consumer.consume(this.batchSize.next, this.pollTimeoutMs);
    this.batchSize.observe(batch.length, performance.now() - t0);
    return batch;
  }

  private process(batch: Kafka.Message[]): void {
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

  /** Every commit interval (sooner with a backlog): settle the transaction in flight, begin the next. */
  private async maybeCommit(): Promise<void> {
    const full = this.processedSinceCommit >= MAX_EVENTS_PER_TRANSACTION;
    if (!full && Date.now() - this.lastCommitAt < this.config.commitIntervalMs) return;
    // A backlog must not grow the next transaction without bound while one is committing.
    if (this.transactions.inFlight && !full) return;
    await this.settle();
    this.beginCommit();
  }

  /**
   * Cuts every task's changes into one transaction and starts committing it, without waiting:
   * settle waits. The caller has settled the previous one.
   */
  private beginCommit(): void {
    const now = Date.now();
    this.lastCommitAt = now;
    this.processedSinceCommit = 0;
    this.gauges.maybeUpdate(now, this.tasks.values());
    this.sourceEnds.refresh(now);
    const ends = this.sourceEnds.fresh(now);
    const { impressions, repartition } = this.config.topics;
    const prepared: Array<{ task: PartitionTask; commit: TaskCommit }> = [];
    const records: OutgoingRecord[] = [];
    const offsets: Kafka.TopicPartitionOffset[] = [];
    for (const task of this.tasks.values()) {
      const commit = task.prepareCommit(now, this.sourceEnds.idle(task, now), ends);
      if (commit === null) continue;
      prepared.push({ task, commit });
      for (const r of commit.records) records.push(r);
      offsets.push({ topic: impressions, partition: task.partition, offset: commit.sourceOffset });
      offsets.push({ topic: repartition, partition: task.partition, offset: commit.channelOffset });
    }
    if (prepared.length === 0) return;
    this.transactions.begin(records, offsets, () => {
      for (const { task, commit } of prepared) task.postCommit(commit);
    });
  }

  /** Waits for the transaction in flight; recovers from its failure as the error's class says. */
  private async settle(): Promise<void> {
    try {
      await this.transactions.settle();
    } catch (err) {
      if (err instanceof TaskCorruptedError) await this.restoreInPlace(err);
      else if (err instanceof TaskMigratedError) await this.migrated(err);
      else throw err;
    }
  }

  /**
   * Commits what every task holds and waits for it (on revoke and on stop). A failed transaction
   * is logged and returned: the tasks it covered are dropped next or, if they stay (a cooperative
   * revocation), recovered by the caller; whoever owns a task next re-reads what was not committed.
   */
  private async commitAll(failureMessage: string): Promise<TaskCorruptedError | TaskMigratedError | undefined> {
    try {
      await this.transactions.settle();
      this.beginCommit();
      await this.transactions.settle();
      return undefined;
    } catch (err) {
      if (!(err instanceof TaskCorruptedError || err instanceof TaskMigratedError)) throw err;
      this.log.warn({ err: err.message, kind: err.name }, failureMessage);
      return err;
    }
  }

  /**
   * The transaction was aborted: memory is ahead of what Kafka committed, but the tasks are still
   * ours. Rebuild every one from the changelog and rewind its inputs to the committed offsets.
   */
  private async restoreInPlace(err: TaskCorruptedError): Promise<void> {
    const partitions = [...this.tasks.keys()];
    this.log.warn({ err: err.message, kind: err.name, partitions }, 'aggregator.transaction_failed_restoring');
    await this.reinitialize(partitions, 'seek');
  }

  /**
   * The producer was fenced (a newer process has our transactional id), is unusable, or could not
   * even abort: the tasks may be someone else's now, and restoring them here would race their new
   * owner for the same partitions. Eager: drop every task without restoring and rejoin the group
   * (unsubscribe, subscribe): the revocation lets the partitions go, and whatever the group
   * assigns next is restored then, from what was committed. Cooperative: see below.
   */
  private async migrated(err: TaskMigratedError): Promise<void> {
    if (rebalanceProtocolOf(this.consumer.client) === 'cooperative') {
      // The group takes partitions back only through a revocation (librdkafka reports a lost
      // membership as one), and a rejoin would not give them back: librdkafka still counts them as
      // this member's, so no assignment would name them again. They stay ours until revoked:
      // restore them in place. If another member does own them now, our next commit is fenced by
      // its generation, and the revocation follows.
      this.log.warn({ err: err.message, kind: err.name, partitions: [...this.tasks.keys()] }, 'aggregator.tasks_migrated_restoring');
      await this.reinitialize([...this.tasks.keys()], 'seek');
      return;
    }
    this.log.warn({ err: err.message, kind: err.name, partitions: [...this.tasks.keys()] }, 'aggregator.tasks_migrated_rejoining');
    this.tasks.clear();
    this.metrics.assigned.set(0);
    this.consumer.client.unsubscribe();
    this.consumer.client.subscribe(this.subscription);
  }

  private async handleRebalances(): Promise<void> {
    for (let ev = this.rebalances.next(); ev !== undefined; ev = this.rebalances.next()) await this.handleRebalance(ev);
  }

  /**
   * One assignment or revocation. A revocation first commits what every task holds (settling the
   * transaction in flight): one producer, one transaction for all tasks (Kafka Streams' EOS v2
   * commits all tasks on a revocation too), so the revoked partitions' work is in Kafka before
   * they are let go, and the partitions that stay lose nothing by it. Under the cooperative
   * protocol the staying tasks are neither dropped nor restored: they keep their state and go on
   * counting, and an assignment restores only the partitions that are new here.
   */
  private async handleRebalance(ev: RebalanceEvent): Promise<void> {
    const plan = planRebalance(this.tasks.keys(), ev);
    if (ev.kind === 'revoke') {
      this.log.info({ partitions: ev.partitions, protocol: ev.protocol, keep: plan.keep }, 'aggregator.partitions_revoked');
      const failed = await this.commitAll('aggregator.revoke_commit_failed');
      for (const p of plan.drop) this.tasks.delete(p);
      this.consumer.release(ev.partitions, ev.protocol);
      // The staying tasks were in the failed transaction too: their memory is ahead of Kafka.
      if (failed !== undefined && plan.keep.length > 0) {
        if (failed instanceof TaskCorruptedError) await this.restoreInPlace(failed);
        else await this.migrated(failed);
      }
    } else {
      this.log.info({ partitions: ev.partitions, protocol: ev.protocol, keep: plan.keep }, 'aggregator.partitions_assigned');
      for (const p of plan.drop) this.tasks.delete(p);
      await this.reinitialize(plan.restore, { assign: ev.protocol });
    }
    this.metrics.assigned.set(this.tasks.size);
    this.log.info({ partitions: [...this.tasks.keys()].sort((a, b) => a - b) }, 'aggregator.tasks_owned');
  }

  /**
   * (Re)builds the tasks of `partitions`: committed offsets first (stable: a pending transaction on
   * them finishes before we read), then their state from the changelog, then the consumer is
   * positioned at the committed offsets: assigned (answering an assignment, under its protocol)
   * or, for tasks it consumes already, sought.
   */
  private async reinitialize(partitions: number[], how: { assign: RebalanceProtocol } | 'seek'): Promise<void> {
    for (const p of partitions) this.tasks.delete(p);
    if (partitions.length === 0) {
      if (how !== 'seek') this.consumer.take([], how.assign);
      return;
    }
    const { impressions, repartition } = this.config.topics;
    const committed = await committedOffsets(this.consumer, this.config.topics, partitions, this.log);
    const stopTimer = this.metrics.restoreSeconds.startTimer();
    const { states, stats } = await restorePartitions(this.config, this.settings, partitions);
    stopTimer();
    this.log.info({ ...stats, partitions }, 'aggregator.restored');
    const now = Date.now();
    for (const p of partitions) {
      const offsets = committed.get(p) ?? { source: 0, channel: 0 };
      this.tasks.set(p, new PartitionTask(p, states.get(p)!, offsets, this.config.topics, this.config.partitions, now, this.dimensionFields));
    }
    // An offset never committed means the beginning; the task's own count starts at 0 all the same.
    const positions = partitions.flatMap((p) => [
      { topic: impressions, partition: p, offset: committed.get(p)?.source ?? OFFSET_BEGINNING },
      { topic: repartition, partition: p, offset: committed.get(p)?.channel ?? OFFSET_BEGINNING },
    ]);
    if (how !== 'seek') {
      this.consumer.take(positions, how.assign);
      return;
    }
    for (const tp of positions) {
      const to = { ...tp, offset: Math.max(0, tp.offset) };
      await retry(() => this.consumer.seek(to, 10_000), { what: 'seek', attempts: 20, delayMs: 250 });
    }
  }
}
