/**
 * Bench peer (issue 6): ClickHouse's own Kafka engine plus a materialized view counting the input
 * topic per (window start, advertiser_id, campaign_id) into a SummingMergeTree table: the
 * at-least-once pipeline many users run today. No dedup: every record is counted, duplicates too.
 *
 * Works against the local stack as it is: Debian's clickhouse-server 18.16 links the system
 * librdkafka (bookworm: 2.0.2), which negotiates protocol versions Kafka 4.x still serves.
 *
 * The run: reset the engine's consumer group to the beginning of the topic (18.16 has no per-table
 * auto.offset.reset and librdkafka defaults to `latest`), create the scratch database and the
 * target table, start the clock, create the Kafka engine table and the view, poll the target's
 * sum(impressions) every 100 ms until it reaches `events`. Then, untimed, wait until the group's
 * committed offsets reach the end of every partition and read the final count (an over-count shows
 * there). Clean up: drop the view, the engine table (its consumers leave the group), the target
 * and the database, then delete the consumer group with Kafka's own ConsumerGroupCommand (the
 * broker jars the stack already caches; node-rdkafka has no DeleteGroups).
 *
 * What the clock includes: 18.16 sends a stream's rows through the view as one insert (squashed
 * to min_insert_block_size_rows) and commits its offsets when the stream ends, which is ~2.5 s
 * after the topic goes quiet (its 500 ms polls; an empty stream takes 2501 ms in its trace log) or
 * after stream_flush_interval_ms. So a preloaded topic's count lands all at once, that tail
 * included. Events must carry `ts` as epoch ms (a UInt64 column; ISO strings fail to parse) and be
 * valid JSON: 18.16 retries an unparsable record forever.
 */
import { spawn } from 'node:child_process';
import Kafka from 'node-rdkafka';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { createClickHouse, identifier, queryRows, stringLiteral, uintLiteral } from '../../server/src/clickhouse/index.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { kafkaError } from '../../server/src/errors/index.js';
import { ensureKafkaJars } from '../../server/src/stack/index.js';
import { sleep } from '../../test/kit/waiting.js';
import type { ContenderResult } from '../lib/contender-result.js';


export interface ClickHouseKafkaEnginePeerOptions {
  brokers: string; inputTopic: string; partitions: number; events: number; windowMs: number;
  /** The bench's config: its ClickHouse (credentials included) and the Kafka jars' cache. */
  config: TallyConfig;
  database: string; // a scratch database the runner creates and drops
  log: (msg: string) => void;
  /**
   * kafka_num_consumers (default 1, at most `partitions`). Measured on the 2-core bench box with
   * 210k records: 1 consumer 5.1–5.3 s every run; 2 or 4 consumers 4.3–7.8 s (median ~6.4), and
   * now and then every record counted twice: the first consumer to join takes all partitions,
   * reads them, and an eager rebalance 3 s later hands them out again from the still uncommitted
   * offsets.
   */
  kafkaNumConsumers?: number;
  /**
   * kafka_max_block_size: rows per block read by a consumer (default 65536; 16k–1M measured the
   * same, since 18.16 squashes the view's insert to min_insert_block_size_rows anyway).
   */
  kafkaMaxBlockSize?: number;
  /** Give up when the count has not moved for this long (default 60 s). */
  stallMs?: number;
}

const POLL_MS = 100;
const SETTLE_MS = 30_000;
const TABLES = ['mv', 'queue', 'counts'] as const;


export async function runClickHouseKafkaEnginePeer(opts: ClickHouseKafkaEnginePeerOptions): Promise<ContenderResult> {
  const { brokers, inputTopic, partitions, events, windowMs, log } = opts;
  const db = identifier(opts.database);
  if (!Number.isSafeInteger(events) || events <= 0) throw new Error(`events must be a positive integer: ${events}`);
  if (!Number.isSafeInteger(windowMs) || windowMs <= 0) throw new Error(`windowMs must be a positive integer: ${windowMs}`);
  if (!Number.isSafeInteger(partitions) || partitions <= 0) throw new Error(`partitions must be a positive integer: ${partitions}`);
  const numConsumers = opts.kafkaNumConsumers ?? 1;
  if (!Number.isSafeInteger(numConsumers) || numConsumers < 1 || numConsumers > partitions) {
    throw new Error(`kafkaNumConsumers must be within 1..${partitions}: ${numConsumers}`);
  }
  const maxBlockSize = opts.kafkaMaxBlockSize ?? 65_536;
  uintLiteral(maxBlockSize);
  const stallMs = opts.stallMs ?? 60_000;
  // A fresh group per run: a member of an earlier run's group may outlive its table (a broker
  // restart swallows the LeaveGroup; the broker then waits out the 45 s session timeout).
  const group = `${db.replace(/_/g, '-')}-kafka-engine-${Date.now().toString(36)}`;

  const { config } = opts;
  const ch = createClickHouse(config, { application: 'tally-bench-ch-kafka-engine', log: 'off', requestTimeoutMs: 60_000 });
  let offsets: GroupOffsets | undefined;
  let created = false;
  let groupUsed = false;
  try {
    const [{ version }] = await queryRows<{ version: string }>(ch, 'SELECT version() AS version');
    const settings = Object.fromEntries((await queryRows<{ name: string; value: string }>(ch,
      "SELECT name, value FROM system.settings WHERE name IN ('stream_flush_interval_ms', 'min_insert_block_size_rows')")).map((r) => [r.name, r.value]));
    const existing = await queryRows<{ name: string }>(ch, `SELECT name FROM system.databases WHERE name = ${stringLiteral(db)}`);
    if (existing.length > 0) await dropLeftover(ch, db, log);

    offsets = await GroupOffsets.open(brokers, group, inputTopic, partitions);
    const { lows, highs } = await offsets.watermarks();
    const inTopic = highs.reduce((s, h, p) => s + h - lows[p], 0);
    if (inTopic !== events) log(`clickhouse-kafka-engine: ${inputTopic} holds ${inTopic} records, expected ${events}`);
    // 18.16 cannot set auto.offset.reset per table, and librdkafka's default is `latest`: a new
    // group would skip the preloaded topic. A user resets the group first, as here.
    groupUsed = true;
    offsets.commit(lows);

    await ch.command({ query: `CREATE DATABASE ${db}` });
    created = true;
    await ch.command({ query: `CREATE TABLE ${db}.counts (window_start UInt64, advertiser_id String, campaign_id String, impressions UInt64, spend_micros UInt64) ENGINE = SummingMergeTree((impressions, spend_micros)) ORDER BY (window_start, advertiser_id, campaign_id)` });
    const kafkaSettings = [
      `kafka_broker_list = ${stringLiteral(brokers)}`,
      `kafka_topic_list = ${stringLiteral(inputTopic)}`,
      `kafka_group_name = ${stringLiteral(group)}`,
      "kafka_format = 'JSONEachRow'",
      `kafka_num_consumers = ${uintLiteral(numConsumers)}`,
      `kafka_max_block_size = ${uintLiteral(maxBlockSize)}`,
    ].join(', ');
    log(`clickhouse-kafka-engine: ${version}, ${numConsumers} consumer(s), blocks of ${maxBlockSize}, group ${group}; counting ${events} records of ${inputTopic}`);

    const t0 = Date.now();
    await ch.command({ query: `CREATE TABLE ${db}.queue (ts UInt64, advertiser_id String, campaign_id String, cost_micros UInt64) ENGINE = Kafka SETTINGS ${kafkaSettings}` });
    await ch.command({ query: `CREATE MATERIALIZED VIEW ${db}.mv TO ${db}.counts AS SELECT toUInt64(intDiv(ts, ${uintLiteral(windowMs)}) * ${uintLiteral(windowMs)}) AS window_start, advertiser_id, campaign_id, count() AS impressions, sum(cost_micros) AS spend_micros FROM ${db}.queue GROUP BY window_start, advertiser_id, campaign_id` });

    const count = async () => Number((await queryRows<{ n: string }>(ch, `SELECT sum(impressions) AS n FROM ${db}.counts`))[0]?.n ?? 0);
    let counted = 0;
    let lastChange = Date.now();
    let lastLog = Date.now();
    let firstRowsAt = NaN;
    while (counted < events && Date.now() - lastChange < stallMs) {
      await sleep(POLL_MS);
      const n = await count();
      if (n !== counted) { counted = n; lastChange = Date.now(); }
      if (n > 0 && Number.isNaN(firstRowsAt)) firstRowsAt = (Date.now() - t0) / 1000;
      if (Date.now() - lastLog >= 2000) {
        lastLog = Date.now();
        log(`clickhouse-kafka-engine: ${counted} of ${events} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
    }
    const reached = counted >= events;
    const seconds = ((reached ? Date.now() : lastChange) - t0) / 1000;

    // Untimed: the offsets commit only when a stream ends (the topic drained or
    // stream_flush_interval_ms elapsed); a re-read after a rebalance would show as an over-count.
    let committedAt = NaN;
    const settleEnd = Date.now() + SETTLE_MS;
    while (reached && Date.now() < settleEnd) {
      const committed = await offsets.committed();
      if (committed.every((o, p) => o >= highs[p])) { committedAt = (Date.now() - t0) / 1000; break; }
      await sleep(200);
    }
    // A grace second for a late insert (a block re-read after a rebalance): its absence cannot be
    // observed, only waited out, before the count that goes into the verdict.
    await sleep(1000);
    counted = await count();

    const diff = counted - events;
    const verdict = diff === 0 ? `counted exactly ${events} records` : diff > 0
      ? `OVER-COUNT: ${counted} counted for ${events} records (+${diff}: records re-read after a rebalance; offsets commit only when a stream ends)`
      : `UNDER-COUNT: stalled at ${counted} of ${events} records (${-diff} missing; see the ClickHouse server log)`;
    const note = [
      `ClickHouse ${version} Kafka engine + MATERIALIZED VIEW into SummingMergeTree`,
      `kafka_num_consumers=${numConsumers}, kafka_max_block_size=${maxBlockSize}`,
      `stream_flush_interval_ms=${settings.stream_flush_interval_ms ?? '?'}, min_insert_block_size_rows=${settings.min_insert_block_size_rows ?? '?'} (server profile; 18.16 has no per-table setting: a stream's rows land in one insert when it ends)`,
      'group reset to the beginning first (18.16 has no per-table auto.offset.reset)',
      `at-least-once, no dedup: duplicate records are counted as impressions (duplicates: 0 = none removed); ${verdict}`,
      Number.isNaN(firstRowsAt) ? 'no rows ever landed' : `first rows landed after ${firstRowsAt.toFixed(1)} s`,
      Number.isNaN(committedAt) ? 'offsets NOT committed to the end within 30 s of the count' : `offsets committed to the end after ${committedAt.toFixed(1)} s`,
    ].join('; ');
    log(`clickhouse-kafka-engine: ${note}`);
    return { seconds, eventsPerSec: Math.round((reached ? events : counted) / seconds), counted, duplicates: 0, note };
  } finally {
    if (created) await dropAll(ch, db).catch((err: unknown) => log(`clickhouse-kafka-engine: cleanup of ${db} failed: ${(err as Error).message}`));
    offsets?.close();
    await ch.close();
    if (groupUsed) await deleteGroup(config.cacheDir, brokers, group, log);
  }
}

/** Only a database holding nothing but this runner's tables is dropped; anything else is refused. */
async function dropLeftover(ch: ClickHouseClient, db: string, log: (msg: string) => void): Promise<void> {
  const tables = (await queryRows<{ name: string }>(ch, `SELECT name FROM system.tables WHERE database = ${stringLiteral(db)}`)).map((t) => t.name);
  if (tables.some((t) => !(TABLES as readonly string[]).includes(t))) {
    throw new Error(`database ${db} exists and holds other tables (${tables.join(', ')}); pick another scratch database`);
  }
  log(`clickhouse-kafka-engine: dropping the leftover scratch database ${db}`);
  await dropAll(ch, db);
}

async function dropAll(ch: ClickHouseClient, db: string): Promise<void> {
  // The view first: then the engine table stops streaming; dropping it closes its consumers.
  for (const t of TABLES) await ch.command({ query: `DROP TABLE IF EXISTS ${db}.${t}` });
  await ch.command({ query: `DROP DATABASE IF EXISTS ${db}` });
}

/**
 * Deletes the engine's consumer group with Kafka's ConsumerGroupCommand from the jars the stack
 * caches (a JVM start, ~1 s). Retries while the departed consumers still count as members: at most
 * until librdkafka's 45 s session timeout has expired them.
 */
async function deleteGroup(cacheDir: string, brokers: string, group: string, log: (msg: string) => void): Promise<void> {
  let libs: string;
  try {
    libs = ensureKafkaJars(cacheDir, log);
  } catch (err) {
    log(`clickhouse-kafka-engine: consumer group ${group} left behind (no Kafka jars: ${(err as Error).message})`);
    return;
  }
  let out = '';
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    out = await new Promise<string>((resolve) => {
      const p = spawn('java', ['-cp', `${libs}/*`, 'org.apache.kafka.tools.consumer.group.ConsumerGroupCommand',
        '--bootstrap-server', brokers, '--delete', '--group', group], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      p.stdout.on('data', (d: Buffer) => { text += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { text += d.toString(); });
      p.on('error', (err) => resolve(err.message));
      p.on('close', () => resolve(text));
    });
    if (/was successful|does not exist/.test(out)) return;
    await sleep(2000);
  }
  log(`clickhouse-kafka-engine: could not delete consumer group ${group}: ${out.trim().split('\n').slice(-2).join(' ')}`);
}

/** A consumer that never subscribes: reads watermarks and the group's committed offsets, and commits. */
class GroupOffsets {
  private readonly parts: Kafka.TopicPartition[];

  private constructor(private readonly consumer: Kafka.KafkaConsumer, private readonly topic: string, partitions: number) {
    this.parts = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }));
  }

  static async open(brokers: string, group: string, topic: string, partitions: number): Promise<GroupOffsets> {
    const consumer = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'group.id': group, 'enable.auto.commit': false, log_level: 0 }, {});
    await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
    return new GroupOffsets(consumer, topic, partitions);
  }

  async watermarks(): Promise<{ lows: number[]; highs: number[] }> {
    const marks = await Promise.all(this.parts.map((tp) => new Promise<Kafka.WatermarkOffsets>((resolve, reject) =>
      this.consumer.queryWatermarkOffsets(this.topic, tp.partition, 10_000, (err, o) => (err ? reject(kafkaError(`watermarks of ${this.topic}[${tp.partition}]`, err)) : resolve(o))))));
    return { lows: marks.map((m) => m.lowOffset), highs: marks.map((m) => m.highOffset) };
  }

  /** Commits these offsets for the group (a simple-consumer commit: the group must have no members). */
  commit(offsets: number[]): void {
    try {
      this.consumer.commitSync(this.parts.map((tp) => ({ ...tp, offset: offsets[tp.partition] })));
    } catch (err) {
      throw new Error(`could not reset the engine's consumer group to the beginning: ${(err as Error).message}`);
    }
  }

  async committed(): Promise<number[]> {
    const tps = await new Promise<Kafka.TopicPartitionOffset[]>((resolve, reject) =>
      this.consumer.committed(this.parts, 10_000, (err, r) => (err ? reject(kafkaError('committed', err)) : resolve(r))));
    const out = this.parts.map(() => -1);
    for (const tp of tps) out[tp.partition] = tp.offset ?? -1;
    return out;
  }

  close(): void {
    this.consumer.disconnect();
  }
}
