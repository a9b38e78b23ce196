import crypto from 'node:crypto';
import Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { kafkaError } from '../errors.js';
import { decodeCountRecord, decodeWindowRow } from './count-record.js';
import { parseChunkKey } from './changelog.js';
import { PartitionState, type WindowSettings } from './core/index.js';

const OFFSET_BEGINNING = -2;

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
 * rows, the watermark) and the dedup changelog partitions (ids per window), read read_committed
 * from the beginning to their end, so only committed transactions count. The caller has fetched
 * the committed input offsets first (require_stable), so any transaction that committed offsets
 * for these partitions is complete and visible here.
 */
export async function restorePartitions(config: TallyConfig, settings: WindowSettings, partitions: number[]): Promise<{ states: Map<number, PartitionState>; stats: RestoreStats }> {
  const t0 = Date.now();
  const states = new Map<number, PartitionState>();
  for (const p of partitions) states.set(p, new PartitionState(p, settings));
  const stats: RestoreStats = { partitions, records: 0, rows: 0, ids: 0, ms: 0 };
  if (partitions.length === 0) return { states, stats };

  // Rows are collected first and applied at the end: a tombstone later in the log deletes one.
  const rows = new Map<number, Map<string, Buffer>>();
  const chunks = new Map<number, Map<string, Buffer>>();
  for (const p of partitions) {
    rows.set(p, new Map());
    chunks.set(p, new Map());
  }

  const consumer = new Kafka.KafkaConsumer({
    'metadata.broker.list': config.kafka.brokers,
    'group.id': `tally-restore-${crypto.randomUUID()}`,
    'enable.auto.commit': false,
    'enable.partition.eof': true,
    'isolation.level': 'read_committed',
    'fetch.max.bytes': 52_428_800,
    'fetch.wait.max.ms': 10,
    'max.partition.fetch.bytes': 10_485_760,
    log_level: 3,
  }, { 'auto.offset.reset': 'earliest' });

  const pending = new Set<string>();
  const assignment: Kafka.Assignment[] = [];
  for (const p of partitions) {
    for (const topic of [config.topics.counts, config.topics.changelog]) {
      assignment.push({ topic, partition: p, offset: OFFSET_BEGINNING });
      pending.add(`${topic}:${p}`);
    }
  }

  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(kafkaError('restore connect', err)) : resolve())));
  try {
    consumer.on('partition.eof', (eof) => pending.delete(`${eof.topic}:${eof.partition}`));
    // consume(n) waits this long for each record it still lacks; the 1 s default made an empty
    // restore take a second after the last end-of-partition.
    consumer.setDefaultConsumeTimeout(10);
    consumer.assign(assignment);
    const deadline = Date.now() + 10 * 60_000;
    while (pending.size > 0) {
      if (Date.now() > deadline) throw new Error(`restore did not reach the end of ${[...pending].join(', ')}`);
      const batch = await new Promise<Kafka.Message[]>((resolve, reject) =>
        consumer.consume(20_000, (err, msgs) => (err ? reject(kafkaError('restore consume', err)) : resolve(msgs))));
      for (const m of batch) {
        stats.records++;
        const key = m.key ? m.key.toString() : '';
        const target = m.topic === config.topics.counts ? rows.get(m.partition) : chunks.get(m.partition);
        if (!target) continue;
        if (m.value === null || m.value === undefined || m.value.length === 0) target.delete(key);
        else target.set(key, m.value);
      }
    }
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }

  for (const p of partitions) {
    const state = states.get(p) as PartitionState;
    for (const value of (rows.get(p) as Map<string, Buffer>).values()) {
      const rec = decodeCountRecord(value);
      if (rec === null) continue;
      if (rec.type === 'watermark') state.restoreWatermark(rec.max_event_time, rec.watermark);
      else {
        state.restoreRow(decodeWindowRow(rec));
        stats.rows++;
      }
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
