/**
 * Reads `impression-counts` and `impressions-dlq` from the beginning and keeps reading, with
 * `isolation.level=read_committed` (only records of committed transactions are ever delivered,
 * so a number the feed shows never goes back), as a plain assigned consumer: a random group id
 * that never subscribes and never commits. Window rows and watermarks go into the LiveState;
 * dead letters are counted by their `reason` header.
 */
import crypto from 'node:crypto';
import Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { kafkaError } from '../errors/index.js';
import type { Logger } from '../observability/index.js';
import { DLQ_HEADER, headerValue, NO_REASON } from '../contracts/dead-letter.js';
import { decodeLiveRecord } from './live-record.js';
import type { LiveMetrics } from './live-metrics.js';
import type { LiveState } from './live-state.js';

const OFFSET_BEGINNING = -2;
const MAX_CONSUME = 5_000;
/**
 * node-rdkafka's consume(n) waits up to this long for *each* next record and returns only after a
 * gap this long (or n records): with a long timeout a steady trickle of transactions (one every
 * 100 ms) would hold a batch for seconds. 10 ms returns right after each fetch.
 */
const POLL_MS = 10;
/** Back-off after a consume error. */
const ERROR_BACKOFF_MS = 100;
const LAG_EVERY_MS = 1_000;
const ERROR_LOG_EVERY_MS = 10_000;
const METADATA_RETRY_MS = 1_000;

export interface FeedConsumerOptions {
  /** Called after every consumed batch that changed the state (the server flushes on its own tick). */
  onBatch?: () => void;
}

function promisify<T>(fn: (cb: (err: Kafka.LibrdKafkaError | null | undefined, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

export class FeedConsumer {
  private readonly consumer: Kafka.KafkaConsumer;
  private readonly deadLetterCounts: Record<string, number> = {};
  /** End offsets as of the start, per `${topic}|${partition}`, still to be reached. */
  private readonly pending = new Set<string>();
  private readonly ends = new Map<string, number>();
  /** Next offset to read per partition of the counts topic (past the last delivered record or EOF). */
  private readonly next = new Map<number, number>();
  private countsPartitions: number[] = [];
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private caughtUpResolve: (() => void) | undefined;
  private caughtUpFlag = false;
  readonly caughtUp: Promise<void>;
  private lastLagAt = 0;
  private lastErrorLogAt = 0;
  private poison = 0;

  constructor(
    private readonly config: TallyConfig,
    private readonly state: LiveState,
    private readonly log: Logger,
    private readonly metrics: LiveMetrics,
    private readonly opts: FeedConsumerOptions = {},
  ) {
    this.caughtUp = new Promise((resolve) => { this.caughtUpResolve = resolve; });
    this.consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': config.kafka.brokers,
      'group.id': `tally-live-${crypto.randomBytes(6).toString('hex')}`,
      'client.id': `tally-live-${config.instanceId}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      'enable.partition.eof': true,
      'fetch.wait.max.ms': 50,
      'queued.max.messages.kbytes': 65_536,
      log_level: 3,
    }, { 'auto.offset.reset': 'earliest' });
    this.consumer.on('event.error', (err) => this.rateLimitedWarn('live.kafka_error', { err: err.message, code: err.code }));
    this.consumer.on('partition.eof', (e) => this.onEof(e.topic, e.partition, e.offset));
  }

  get isCaughtUp(): boolean {
    return this.caughtUpFlag;
  }

  /** Dead letters committed on impressions-dlq, by reason (all the topic holds). */
  deadLetters(): Record<string, number> {
    return { ...this.deadLetterCounts };
  }

  /** Records skipped because tally did not write them. */
  get poisonRecords(): number {
    return this.poison;
  }

  /** Next offset the feed reads per partition of impression-counts. */
  positions(): Map<number, number> {
    return new Map(this.next);
  }

  /**
   * Connects (rejects if Kafka cannot be reached), then in the background waits for both topics,
   * assigns every partition from the beginning and keeps consuming; `caughtUp` resolves once the
   * end offsets as of the assignment are reached.
   */
  async start(): Promise<void> {
    await promisify<unknown>((cb) => this.consumer.connect({ timeout: 30_000 }, (err, md) => cb(err, md)));
    this.loopDone = this.assignThenLoop();
  }

  private async assignThenLoop(): Promise<void> {
    for (;;) {
      try {
        await this.assignFromBeginning();
        break;
      } catch (err) {
        if (this.stopping) return;
        this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'live.assign_failed_retrying');
        await new Promise((r) => setTimeout(r, 5_000));
      }
    }
    await this.runLoop();
  }

  private async assignFromBeginning(): Promise<void> {
    const { counts, dlq } = this.config.topics;
    this.ends.clear();
    this.pending.clear();
    const assignment: Kafka.Assignment[] = [];
    for (const topic of [counts, dlq]) {
      const partitions = await this.partitionsOf(topic);
      if (topic === counts) this.countsPartitions = partitions;
      for (const partition of partitions) {
        const w = await this.watermarks(topic, partition);
        const key = `${topic}|${partition}`;
        this.ends.set(key, w.highOffset);
        if (w.highOffset > w.lowOffset) this.pending.add(key);
        if (topic === counts) this.next.set(partition, Math.max(0, w.lowOffset));
        assignment.push({ topic, partition, offset: OFFSET_BEGINNING });
      }
    }
    this.consumer.assign(assignment);
    this.log.info({ counts, dlq, partitions: this.countsPartitions.length, toRead: Object.fromEntries(this.ends) }, 'live.consumer_started');
    this.checkCaughtUp();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loopDone?.catch(() => undefined);
    await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
  }

  private async partitionsOf(topic: string): Promise<number[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const md = await promisify<Kafka.Metadata>((cb) => this.consumer.getMetadata({ topic, timeout: 10_000 }, (err, m) => cb(err, m)));
        const t = md.topics.find((x) => x.name === topic);
        if (t && t.partitions.length > 0) return t.partitions.map((p) => p.id).sort((a, b) => a - b);
        if (attempt === 1 || attempt % 30 === 0) this.log.warn({ topic }, 'live.topic_missing_waiting');
      } catch (err) {
        if (attempt === 1 || attempt % 30 === 0) this.log.warn({ topic, err: String(err) }, 'live.metadata_failed_retrying');
      }
      if (this.stopping) throw new Error('live feed stopped');
      await new Promise((r) => setTimeout(r, METADATA_RETRY_MS));
    }
  }

  private async watermarks(topic: string, partition: number): Promise<Kafka.WatermarkOffsets> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await promisify<Kafka.WatermarkOffsets>((cb) => this.consumer.queryWatermarkOffsets(topic, partition, 10_000, (err, o) => cb(err, o)));
      } catch (err) {
        if (attempt >= 30 || this.stopping) throw kafkaError(`end offset of ${topic}[${partition}]`, err as Kafka.LibrdKafkaError);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private async runLoop(): Promise<void> {
    this.consumer.setDefaultConsumeTimeout(POLL_MS);
    while (!this.stopping) {
      const msgs = await this.consume();
      if (msgs.length > 0) {
        let changed = false;
        for (const m of msgs) changed = this.handle(m) || changed;
        this.metrics.rowsHeld.set(this.state.stats.rows);
        if (changed) this.opts.onBatch?.();
      }
      this.checkCaughtUp();
      this.updateLag();
    }
  }

  private consume(): Promise<Kafka.Message[]> {
    return new Promise((resolve) => {
      this.consumer.consume(MAX_CONSUME, (err, msgs) => {
        if (!err) return resolve(msgs);
        this.rateLimitedWarn('live.consume_error', { err: err.message, code: err.code });
        setTimeout(() => resolve([]), ERROR_BACKOFF_MS);
      });
    });
  }

  /** Applies one record; true if the state changed. */
  private handle(m: Kafka.Message): boolean {
    const key = `${m.topic}|${m.partition}`;
    const end = this.ends.get(key);
    if (end !== undefined && m.offset + 1 >= end) this.pending.delete(key);
    if (m.topic === this.config.topics.dlq) {
      const reason = headerValue(m, DLQ_HEADER.reason) ?? NO_REASON;
      this.deadLetterCounts[reason] = (this.deadLetterCounts[reason] ?? 0) + 1;
      this.metrics.recordsConsumed.inc({ topic: 'dlq', kind: 'dead_letter' });
      return false;
    }
    this.next.set(m.partition, Math.max(this.next.get(m.partition) ?? 0, m.offset + 1));
    const rec = decodeLiveRecord(m.value);
    this.metrics.recordsConsumed.inc({ topic: 'counts', kind: rec.kind });
    switch (rec.kind) {
      case 'window':
        return this.state.applyRow(rec.row).kind === 'applied';
      case 'watermark':
        if (this.caughtUpFlag) this.metrics.transactionDelay.observe(Math.max(0, Date.now() - rec.emittedAt) / 1000);
        return this.state.applyWatermark(rec.partition, rec.watermark, rec.emittedAt);
      case 'period_close':
        return this.state.applyPeriodClose(rec.partition, rec.periodEnd);
      case 'tombstone':
        // A window settled into its period's close: its counts stay valid (ClickHouse keeps the row too).
        return false;
      case 'poison':
        this.poison++;
        this.rateLimitedWarn('live.poison_record', { partition: m.partition, offset: m.offset, reason: rec.reason });
        return false;
    }
  }

  private onEof(topic: string, partition: number, offset: number): void {
    const key = `${topic}|${partition}`;
    const end = this.ends.get(key);
    if (end !== undefined && offset >= end) this.pending.delete(key);
    if (topic === this.config.topics.counts) this.next.set(partition, Math.max(this.next.get(partition) ?? 0, offset));
  }

  private checkCaughtUp(): void {
    if (this.caughtUpFlag || this.pending.size > 0) return;
    this.caughtUpFlag = true;
    this.metrics.caughtUp.set(1);
    this.log.info({ rows: this.state.stats.rows, watermark: this.state.publishedWatermark, deadLetters: this.deadLetterCounts }, 'live.caught_up');
    this.caughtUpResolve?.();
  }

  private updateLag(): void {
    const now = Date.now();
    if (now - this.lastLagAt < LAG_EVERY_MS) return;
    this.lastLagAt = now;
    for (const p of this.countsPartitions) {
      try {
        const w = this.consumer.getWatermarkOffsets(this.config.topics.counts, p);
        const next = this.next.get(p) ?? 0;
        if (w.highOffset >= 0) this.metrics.consumerLag.set({ partition: String(p) }, Math.max(0, w.highOffset - next));
      } catch {
        /* nothing fetched yet: unknown */
      }
    }
  }

  private rateLimitedWarn(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastErrorLogAt < ERROR_LOG_EVERY_MS) return;
    this.lastErrorLogAt = now;
    this.log.warn(fields, msg);
  }
}
