import crypto from 'node:crypto';
import type { TallyConfig } from '../config/index.js';
import { decodeCountRecord, decodeWindowRow } from '../contracts/count-record.js';
import { kafkaErrorAction } from '../errors/index.js';
import { Consumer, OFFSET_BEGINNING, readToEnd, retry } from '../kafka/index.js';
import { parseChunkKey } from './changelog.js';
import { PartitionState, type WindowSettings } from './core/index.js';
import { decodeProgress } from './progress-record.js';

/** How long a restore waits for a state partition to have a leader again (a broker failover takes seconds). */
const LEADER_WAIT_MS = 120_000;

/** What a restore read, for the log and the restore-duration metric. */
export interface RestoreStats {
  partitions: number[];
  records: number;
  rows: number;
  ids: number;
  ms: number;
}

/**
 * Rebuilds the state of `partitions` from Kafka: the compacted impression-counts partitions (window
 * rows, the progress record) and the dedup changelog partitions (ids per window), read
 * read_committed from the beginning, so only committed transactions count.
 *
 * How far: the caller has fetched the committed input offsets (stable: every transaction that
 * committed offsets for these partitions has ended), so that transaction's records are below each
 * state partition's high watermark now. But its commit marker may land on a state partition after
 * the offsets became stable (the coordinator writes markers partition by partition), and until it
 * does, read_committed reports an end (the last stable offset) before those records. So the restore
 * first takes every state partition's high watermark, then reads until the stable end has reached
 * it: the last committed transaction is always in. An open transaction of a zombie below that mark
 * makes the restore wait for its abort (at most TALLY_TRANSACTION_TIMEOUT_MS).
 */
export async function restorePartitions(config: TallyConfig, settings: WindowSettings, partitions: number[]): Promise<{ states: Map<number, PartitionState>; stats: RestoreStats }> {
  const t0 = Date.now();
  const states = new Map<number, PartitionState>();
  for (const p of partitions) states.set(p, new PartitionState(p, settings, t0));
  const stats: RestoreStats = { partitions, records: 0, rows: 0, ids: 0, ms: 0 };
  if (partitions.length === 0) return { states, stats };

  const stateTopics = [config.topics.counts, config.topics.changelog];
  const targets = await highWatermarks(config, stateTopics, partitions);
  // Rows are collected first and applied at the end: a tombstone later in the log deletes one.
  const rows = new Map<number, Map<string, Buffer>>();
  const chunks = new Map<number, Map<string, Buffer>>();
  for (const p of partitions) {
    rows.set(p, new Map());
    chunks.set(p, new Map());
  }

  const consumer = new Consumer({
    brokers: config.kafka.brokers,
    groupId: `tally-restore-${crypto.randomUUID()}`,
    isolation: 'read_committed',
    partitionEof: true,
    extra: { 'fetch.max.bytes': 52_428_800, 'fetch.wait.max.ms': 10, 'max.partition.fetch.bytes': 10_485_760 },
  });
  await consumer.connect();
  try {
    // Each partition is read until the stable end reaches the high watermark taken above (an EOF
    // there, or a record at or past it: an end-of-partition may not follow at once).
    const ranges = partitions.flatMap((p) => stateTopics.map((topic) => ({ topic, partition: p, from: OFFSET_BEGINNING, end: targets.get(`${topic}:${p}`) ?? 0 })));
    const read = await readToEnd(consumer, ranges, (m) => {
      const key = m.key ? m.key.toString() : '';
      const target = m.topic === config.topics.counts ? rows.get(m.partition) : chunks.get(m.partition);
      if (!target) return;
      if (m.value === null || m.value === undefined || m.value.length === 0) target.delete(key);
      else target.set(key, m.value);
    }, {
      what: 'the state to restore',
      deadline: Date.now() + 10 * 60_000,
      batch: 20_000,
      // consume(n) waits this long for each record it still lacks; the 1 s default made an empty
      // restore take a second after the last end-of-partition.
      pollMs: 10,
    });
    stats.records = read.records;
  } finally {
    await consumer.disconnect();
  }

  const current = { windowMs: settings.windowMs, partitions: settings.partitions };
  for (const p of partitions) {
    const state = states.get(p) as PartitionState;
    const values = [...(rows.get(p) as Map<string, Buffer>).values()].map((v) => decodeCountRecord(v));
    // Progress first: it carries the frontiers and refuses settings that cannot change.
    for (const rec of values) if (rec?.type === 'watermark') state.restoreProgress(decodeProgress(rec, current), t0);
    for (const rec of values) {
      if (rec?.type !== 'window') continue;
      state.restoreRow(decodeWindowRow(rec));
      stats.rows++;
    }
    for (const [key, value] of chunks.get(p) as Map<string, Buffer>) {
      const { windowStart, chunk } = parseChunkKey(key);
      state.restoreDedupChunk(windowStart, chunk, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      stats.ids += value.byteLength / 16;
    }
  }
  stats.ms = Date.now() - t0;
  return { states, stats };
}

/**
 * The high watermark (end of the log, open transactions included) of every topic × partition.
 * A read_uncommitted client: librdkafka asks ListOffsets with the client's isolation level, and
 * read_committed would answer with the last stable offset, the very thing that may lag.
 * On a cluster a restore can start while a state partition's leader has just died and no other
 * has been elected yet (KRaft fences a dead broker after its session, 9 s): each query is retried
 * until the new leader answers rather than ending the restore, and so the aggregator.
 */
async function highWatermarks(config: TallyConfig, topics: string[], partitions: number[]): Promise<Map<string, number>> {
  const client = new Consumer({ brokers: config.kafka.brokers, groupId: `tally-restore-hw-${crypto.randomUUID()}`, isolation: 'read_uncommitted' });
  await client.connect();
  try {
    const out = new Map<string, number>();
    const deadline = Date.now() + LEADER_WAIT_MS;
    for (const topic of topics) {
      for (const p of partitions) {
        const ends = await retry(() => client.queryWatermarkOffsets(topic, p, 10_000), {
          what: `high watermark of ${topic}:${p}`, deadline, delayMs: 250, factor: 2, maxDelayMs: 2_000,
          bail: (err) => kafkaErrorAction(err) === 'fatal',
        });
        out.set(`${topic}:${p}`, ends.highOffset);
      }
    }
    return out;
  } finally {
    await client.disconnect();
  }
}
