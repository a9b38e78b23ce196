/**
 * The dead-letter sink (started by `tally sink` next to the counts sink): impressions-dlq
 * (read_committed, group `<prefix>tally-dlq-sink`) → ClickHouse `dead_letters`, so billing exports
 * and dashboards can count dead letters by reason, advertiser and event time.
 *
 * At-least-once with idempotent writes: a batch is inserted, and only after ClickHouse
 * acknowledged it are its offsets committed. A crash or a rebalance between the two re-reads
 * the same records, which insert the same sorting key (reason, source topic/partition/offset)
 * again; ReplacingMergeTree keeps one, and every reader uses FINAL. That is also why this loop
 * needs none of the counts sink's batch-discarding on rebalance: a duplicate insert is harmless.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import Kafka from 'node-rdkafka';
import { createClickHouse, identifier } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { DLQ_HEADER, headerValue, MAX_DETAIL_CHARS, NO_REASON } from '../contracts/dead-letter.js';
import { ID_PATTERN } from '../contracts/ids.js';
import { isKafkaError, kafkaError } from '../errors/index.js';
import { parseImpression } from '../impression/index.js';
import type { Logger } from '../observability/index.js';

const MAX_CONSUME = 5_000;
const POLL_MS = 200;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const SHUTDOWN_GRACE_MS = 10_000;
/** Values larger than this are not parsed for advertiser and time (they are too_large letters anyway). */
const MAX_PARSE_BYTES = 1 << 20;
const MAX_DATETIME_S = 4_294_967_295;
const MAX_UINT16 = 65_535;

/** A row of `dead_letters` as sent in JSONEachRow (event_ts as epoch seconds). */
export interface DeadLetterRow {
  reason: string;
  detail: string;
  source_topic: string;
  source_partition: number;
  source_offset: number;
  dlq_partition: number;
  dlq_offset: number;
  advertiser_id: string;
  event_ts: number;
}

export const DEAD_LETTER_COLUMNS: [keyof DeadLetterRow, ...Array<keyof DeadLetterRow>] = [
  'reason', 'detail', 'source_topic', 'source_partition', 'source_offset', 'dlq_partition', 'dlq_offset', 'advertiser_id', 'event_ts',
];

/** The consumer group of the dead-letter sink: the configured topic prefix + tally-dlq-sink. */
export function deadLetterGroup(config: TallyConfig): string {
  const suffix = 'tally-clickhouse-sink';
  const prefix = config.groups.sink.endsWith(suffix) ? config.groups.sink.slice(0, -suffix.length) : '';
  return `${prefix}tally-dlq-sink`;
}

export interface DeadLetterRecord {
  topic: string;
  partition: number;
  offset: number;
  value: Buffer | null | undefined;
  headers?: Kafka.MessageHeader[];
}

function uintHeader(v: string | undefined, max: number): number | undefined {
  if (v === undefined || !/^\d{1,16}$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n <= max ? n : undefined;
}

/** Advertiser id and event time (epoch s) carried by a dead letter's value, as far as they can be read. */
export function deadLetterSubject(value: Buffer | null | undefined): { advertiserId: string; eventTs: number } {
  const none = { advertiserId: '', eventTs: 0 };
  if (!value || value.length === 0 || value.length > MAX_PARSE_BYTES) return none;
  // A valid event (too_late, future_timestamp): read exactly as the aggregator read it.
  const parsed = parseImpression(value);
  if (parsed.ok) {
    const s = Math.floor(parsed.impression.ts / 1000);
    return { advertiserId: parsed.impression.advertiserId, eventTs: s >= 0 && s <= MAX_DATETIME_S ? s : 0 };
  }
  let obj: unknown;
  try {
    obj = JSON.parse(value.toString('utf8'));
  } catch {
    return none;
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return none;
  const o = obj as Record<string, unknown>;
  const advertiserId = typeof o.advertiser_id === 'string' && ID_PATTERN.test(o.advertiser_id) ? o.advertiser_id : '';
  let eventTs = 0;
  if (typeof o.ts === 'number' && Number.isSafeInteger(o.ts) && o.ts >= 0) {
    const s = Math.floor(o.ts / 1000);
    if (s <= MAX_DATETIME_S) eventTs = s;
  } else if (typeof o.ts === 'string') {
    const ms = Date.parse(o.ts);
    if (/(Z|[+-]\d{2}:\d{2})$/.test(o.ts) && Number.isFinite(ms) && ms >= 0 && ms / 1000 <= MAX_DATETIME_S) eventTs = Math.floor(ms / 1000);
  }
  return { advertiserId, eventTs };
}

/**
 * The row for a record of the DLQ. Its identity is the input record it came from (headers
 * source-topic/-partition/-offset, written by the aggregator); a record without them (not
 * written by tally) is keyed by its own DLQ coordinates instead, so it is still stored once.
 */
export function toDeadLetterRow(m: DeadLetterRecord): DeadLetterRow {
  const srcTopic = headerValue(m, DLQ_HEADER.sourceTopic);
  const srcPartition = uintHeader(headerValue(m, DLQ_HEADER.sourcePartition), MAX_UINT16);
  const srcOffset = uintHeader(headerValue(m, DLQ_HEADER.sourceOffset), Number.MAX_SAFE_INTEGER);
  const fromHeaders = srcTopic !== undefined && srcTopic !== '' && srcPartition !== undefined && srcOffset !== undefined;
  const { advertiserId, eventTs } = deadLetterSubject(m.value);
  return {
    reason: headerValue(m, DLQ_HEADER.reason) ?? NO_REASON,
    detail: (headerValue(m, DLQ_HEADER.detail) ?? '').slice(0, MAX_DETAIL_CHARS),
    source_topic: fromHeaders ? srcTopic : m.topic,
    source_partition: fromHeaders ? srcPartition : m.partition,
    source_offset: fromHeaders ? srcOffset : m.offset,
    dlq_partition: m.partition,
    dlq_offset: m.offset,
    advertiser_id: advertiserId,
    event_ts: eventTs,
  };
}

export interface DeadLetterSinkOptions {
  /** A client to use instead of one built from the config (not closed by the sink). */
  clickhouse?: ClickHouseClient;
  shutdownGraceMs?: number;
}

export class DeadLetterSink {
  private readonly consumer: Kafka.KafkaConsumer;
  private readonly ch: ClickHouseClient;
  private readonly ownsClient: boolean;
  private readonly table: string;
  private readonly topic: string;
  private readonly group: string;
  private readonly shutdownGraceMs: number;
  private stopping = false;
  private stopRequestedAt = 0;
  private loopDone: Promise<void> | undefined;
  private outageSince: number | undefined;
  private inserted = 0;

  constructor(private readonly config: TallyConfig, private readonly log: Logger, opts: DeadLetterSinkOptions = {}) {
    this.topic = config.topics.dlq;
    this.group = deadLetterGroup(config);
    this.table = `${identifier(config.clickhouse.database)}.dead_letters`;
    this.shutdownGraceMs = opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
    this.ownsClient = opts.clickhouse === undefined;
    this.ch = opts.clickhouse ?? createClickHouse(config);
    this.consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': config.kafka.brokers,
      'group.id': this.group,
      'client.id': `tally-dlq-sink-${config.instanceId}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      'enable.partition.eof': true,
      'session.timeout.ms': 10_000,
      'heartbeat.interval.ms': 1_000,
      'max.poll.interval.ms': 300_000,
      'fetch.wait.max.ms': 100,
      log_level: 3,
    }, { 'auto.offset.reset': 'earliest' });
    this.consumer.on('event.error', (err) => this.log.warn({ err: err.message, code: err.code }, 'dlq_sink.kafka_error'));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => this.consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(kafkaError('dlq consumer connect', err)) : resolve())));
    this.consumer.subscribe([this.topic]);
    this.log.info({ topic: this.topic, group: this.group, table: this.table }, 'dlq_sink.started');
    this.loopDone = this.runLoop();
  }

  /** Inserts and commits what it holds, then leaves the group. */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.stopRequestedAt = Date.now();
    }
    await this.loopDone?.catch(() => undefined);
  }

  get done(): Promise<void> {
    return this.loopDone ?? Promise.resolve();
  }

  private async runLoop(): Promise<void> {
    try {
      while (!this.stopping) {
        const msgs = await this.consume();
        if (msgs.length === 0) continue;
        const rows = msgs.map((m) => toDeadLetterRow(m));
        if (!(await this.insertWithRetry(rows))) break;
        this.inserted += rows.length;
        this.commit(msgs);
      }
      this.log.info({ inserted: this.inserted }, 'dlq_sink.stopped');
    } finally {
      await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
      if (this.ownsClient) await this.ch.close().catch(() => undefined);
    }
  }

  private consume(): Promise<Kafka.Message[]> {
    return new Promise((resolve, reject) => {
      this.consumer.setDefaultConsumeTimeout(POLL_MS);
      this.consumer.consume(MAX_CONSUME, (err, msgs) => {
        if (!err) return resolve(msgs);
        if (err.isFatal) return reject(kafkaError('dlq consume', err));
        this.log.debug({ err: err.message, code: err.code }, 'dlq_sink.consume_error');
        setTimeout(() => resolve([]), POLL_MS);
      });
    });
  }

  /** True once ClickHouse took the rows; false if a stop request's grace ran out first (the records stay uncommitted). */
  private async insertWithRetry(rows: DeadLetterRow[]): Promise<boolean> {
    let backoff = BACKOFF_FIRST_MS;
    for (;;) {
      try {
        await this.ch.insert({ table: this.table, values: rows, format: 'JSONEachRow', columns: DEAD_LETTER_COLUMNS });
        if (this.outageSince !== undefined) {
          this.log.info({ downMs: Date.now() - this.outageSince }, 'dlq_sink.clickhouse_recovered');
          this.outageSince = undefined;
        }
        return true;
      } catch (err) {
        if (this.outageSince === undefined) {
          this.outageSince = Date.now();
          this.log.warn({ err: err instanceof Error ? err.message : String(err), rows: rows.length }, 'dlq_sink.clickhouse_unavailable');
        }
      }
      if (this.stopping && Date.now() - this.stopRequestedAt > this.shutdownGraceMs) {
        this.log.warn({ rows: rows.length }, 'dlq_sink.stopped_with_uncommitted_records');
        return false;
      }
      // Heartbeats run on librdkafka's thread; an outage longer than max.poll.interval.ms makes us
      // leave the group, the commit below then fails and the records are re-read (idempotent).
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
    }
  }

  private commit(msgs: Kafka.Message[]): void {
    const next = new Map<number, number>();
    for (const m of msgs) next.set(m.partition, Math.max(next.get(m.partition) ?? 0, m.offset + 1));
    const tps = [...next].map(([partition, offset]) => ({ topic: this.topic, partition, offset }));
    try {
      this.consumer.commitSync(tps);
    } catch (err) {
      // A rebalance took the partitions: the new owner re-reads and re-inserts them, harmlessly.
      this.log.warn({ err: isKafkaError(err) ? err.message : String(err), offsets: tps }, 'dlq_sink.commit_failed');
    }
  }
}
