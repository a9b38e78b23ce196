/**
 * Reads `impression-counts` and `impressions-dlq` from the beginning and keeps reading, with
 * `isolation.level=read_committed` (only records of committed transactions are ever delivered,
 * so a number the feed shows never goes back), as a plain assigned consumer: a random group id
 * that never subscribes and never commits. Window rows and watermarks go into the LiveState;
 * dead letters are counted by their `reason` header.
 */
import crypto from 'node:crypto';
import type Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { isKafkaError } from '../errors/index.js';
import { Consumer, EndTracker, OFFSET_BEGINNING, retry, sleep, type PartitionEnd } from '../kafka/index.js';
import { Throttle, type Logger } from '../observability/index.js';
import { DLQ_HEADER, headerValue, NO_REASON } from '../contracts/dead-letter.js';
import { decodeLiveRecord } from './live-record.js';
import type { LiveMetrics } from './live-metrics.js';
import type { LiveState } from './live-state.js';

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
/** While a topic is missing (or its metadata fails): one warning at first, then one every this many attempts. */
const METADATA_WARN_EVERY = 30;
const ASSIGN_RETRY_MS = 5_000;

export interface FeedConsumerOptions {
  /** Called after every consumed batch that changed the state (the server flushes on its own tick). */
  onBatch?: () => void;
}

export class FeedConsumer {
  private readonly consumer: Consumer;
  private readonly deadLetterCounts: Record<string, number> = {};
  /** Which partitions have reached their end offset as of the assignment (undefined before it). */
  private ends: EndTracker | undefined;
  /** Next offset to read per partition of the counts topic (past the last delivered record or EOF). */
  private readonly next = new Map<number, number>();
  private countsPartitions: number[] = [];
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private caughtUpResolve: (() => void) | undefined;
  private caughtUpFlag = false;
  readonly caughtUp: Promise<void>;
  private lastLagAt = 0;
  private readonly errorLog = new Throttle(ERROR_LOG_EVERY_MS);
  private poison = 0;

  constructor(
    private readonly config: TallyConfig,
    private readonly state: LiveState,
    private readonly log: Logger,
    private readonly metrics: LiveMetrics,
    private readonly opts: FeedConsumerOptions = {},
  ) {
    this.caughtUp = new Promise((resolve) => { this.caughtUpResolve = resolve; });
    this.consumer = new Consumer({
      brokers: config.kafka.brokers,
      groupId: `tally-live-${crypto.randomBytes(6).toString('hex')}`,
      clientId: `tally-live-${config.instanceId}`,
      isolation: 'read_committed',
      partitionEof: true,
      extra: { 'fetch.wait.max.ms': 50, 'queued.max.messages.kbytes': 65_536 },
    });
    this.consumer.client.on('event.error', (err) => this.rateLimitedWarn('live.kafka_error', { err: err.message, code: err.code }));
    this.consumer.client.on('partition.eof', (e) => this.onEof(e.topic, e.partition, e.offset));
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
    await this.consumer.connect();
    this.loopDone = this.assignThenLoop();
  }

  private async assignThenLoop(): Promise<void> {
    const assigned = await retry(() => this.assignFromBeginning(), {
      what: 'live feed assignment',
      delayMs: ASSIGN_RETRY_MS,
      bail: () => this.stopping,
      onRetry: (err) => this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'live.assign_failed_retrying'),
    }).then(() => true, () => false); // it only gives up once stopping
    if (assigned) await this.runLoop();
  }

  private async assignFromBeginning(): Promise<void> {
    const { counts, dlq } = this.config.topics;
    const ends: PartitionEnd[] = [];
    const starts = new Map<string, number>();
    for (const topic of [counts, dlq]) {
      const partitions = await this.partitionsOf(topic);
      if (topic === counts) this.countsPartitions = partitions;
      for (const partition of partitions) {
        const w = await retry(() => this.consumer.queryWatermarkOffsets(topic, partition, 10_000), {
          what: `end offset of ${topic}[${partition}]`, attempts: 30, delayMs: 200, bail: () => this.stopping,
        });
        ends.push({ topic, partition, end: w.highOffset });
        starts.set(`${topic}|${partition}`, w.lowOffset);
        if (topic === counts) this.next.set(partition, Math.max(0, w.lowOffset));
      }
    }
    this.ends = new EndTracker(ends, (topic, partition) => starts.get(`${topic}|${partition}`) ?? 0);
    this.consumer.client.assign(ends.map((e) => ({ topic: e.topic, partition: e.partition, offset: OFFSET_BEGINNING })));
    const toRead = Object.fromEntries(ends.map((e) => [`${e.topic}|${e.partition}`, e.end]));
    this.log.info({ counts, dlq, partitions: this.countsPartitions.length, toRead }, 'live.consumer_started');
    this.checkCaughtUp();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loopDone?.catch(() => undefined);
    await this.consumer.disconnect();
  }

  /** The topic's partitions, waiting (and warning now and then) while it does not exist yet. */
  private partitionsOf(topic: string): Promise<number[]> {
    return retry(() => this.consumer.partitionsOf(topic, 10_000), {
      what: `partitions of ${topic}`,
      delayMs: METADATA_RETRY_MS,
      bail: () => this.stopping,
      onRetry: (err, attempt) => {
        if (attempt !== 1 && attempt % METADATA_WARN_EVERY !== 0) return;
        if (isKafkaError(err)) this.log.warn({ topic, err: String(err) }, 'live.metadata_failed_retrying');
        else this.log.warn({ topic }, 'live.topic_missing_waiting');
      },
    });
  }

  private async runLoop(): Promise<void> {
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

  /** A batch; after a failure, a short pause and none (the loop goes on). */
  private consume(): Promise<Kafka.Message[]> {
    return this.consumer.consume(MAX_CONSUME, POLL_MS).catch(async (err: unknown) => {
      this.rateLimitedWarn('live.consume_error', { err: err instanceof Error ? err.message : String(err), code: isKafkaError(err) ? err.code : undefined });
      await sleep(ERROR_BACKOFF_MS);
      return [];
    });
  }

  /** Applies one record; true if the state changed. */
  private handle(m: Kafka.Message): boolean {
    // Past the end too: the feed keeps everything it reads, the tracker only learns where it got to.
    this.ends?.record(m.topic, m.partition, m.offset);
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
    this.ends?.eof(topic, partition, offset);
    if (topic === this.config.topics.counts) this.next.set(partition, Math.max(this.next.get(partition) ?? 0, offset));
  }

  private checkCaughtUp(): void {
    if (this.caughtUpFlag || this.ends?.done !== true) return;
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
      const high = this.consumer.cachedHighOffset(this.config.topics.counts, p);
      // Nothing fetched yet: unknown.
      if (high !== undefined) this.metrics.consumerLag.set({ partition: String(p) }, Math.max(0, high - (this.next.get(p) ?? 0)));
    }
  }

  /** One warning per ERROR_LOG_EVERY_MS, whichever kind: a broker outage repeats them on every poll. */
  private rateLimitedWarn(msg: string, fields: Record<string, unknown>): void {
    if (this.errorLog.ready(Date.now())) this.log.warn(fields, msg);
  }
}
