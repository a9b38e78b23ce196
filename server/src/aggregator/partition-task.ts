import type Kafka from 'node-rdkafka';
import type { Topics } from '../config/index.js';
import { homePartition, parseImpression, type DeadLetterReason } from '../impression/index.js';
import type { OutgoingRecord } from '../kafka/index.js';
import { chunkKey } from './changelog.js';
import { encodeWatermark, encodeWindowRow, watermarkKey } from './count-record.js';
import { hashImpressionId, rowKey, type PartitionState } from './core/index.js';

export type RecordOutcome = 'counted' | 'duplicate' | 'forwarded' | DeadLetterReason;

/** One task's part of a transaction: its records, and what the task has committed once it succeeds. */
export interface TaskCommit {
  records: OutgoingRecord[];
  /** The input offset the transaction commits for this partition. */
  offset: number;
  watermark: number;
}

/**
 * One input partition owned by this process: its state store, the offset to commit next, and the
 * records (dead letters, forwards) waiting for the next transaction. Kafka Streams would call it a
 * stream task; it does no I/O itself.
 */
export class PartitionTask {
  /** Offset of the next input record; what the transaction commits for this partition. */
  nextOffset: number;
  /** Wall clock of the last input record, for idle detection. */
  lastRecordAt: number;
  private outbox: OutgoingRecord[] = [];
  private emittedWatermark: number;
  private committedOffset: number;

  constructor(
    readonly partition: number,
    readonly state: PartitionState,
    startOffset: number,
    private readonly topics: Topics,
    private readonly partitions: number,
    now: number,
  ) {
    this.nextOffset = startOffset;
    this.committedOffset = startOffset;
    this.lastRecordAt = now;
    this.emittedWatermark = state.watermark;
  }

  /** True when a transaction has something to write or offsets to move for this partition. */
  get commitNeeded(): boolean {
    return this.nextOffset !== this.committedOffset || this.outbox.length > 0 || this.state.watermark !== this.emittedWatermark;
  }

  process(msg: Kafka.Message, now: number): RecordOutcome {
    this.nextOffset = msg.offset + 1;
    this.lastRecordAt = now;
    const parsed = parseImpression(msg.value);
    if (!parsed.ok) return this.deadLetter(msg, parsed.reason, parsed.detail);
    const imp = parsed.impression;
    const home = homePartition(imp.impressionId, this.partitions);
    if (home !== this.partition) {
      // Dedup is exact only where every copy of an id meets: its home partition's state.
      this.outbox.push({
        topic: this.topics.impressions, partition: home, key: imp.impressionId, value: msg.value ?? null,
        headers: [{ 'tally-forwarded-from': `${this.partition}:${msg.offset}` }],
      });
      return 'forwarded';
    }
    const outcome = this.state.process(imp, hashImpressionId(imp.impressionId), now);
    switch (outcome.kind) {
      case 'counted':
      case 'duplicate':
        return outcome.kind;
      default:
        return this.deadLetter(msg, outcome.kind, outcome.detail);
    }
  }

  /**
   * This partition's part of the next transaction; resets the pending changes. Records processed
   * after this call belong to the transaction after it, so processing may go on while it commits.
   */
  prepareCommit(): TaskCommit {
    const { counts, changelog } = this.topics;
    const p = this.partition;
    const changes = this.state.drainChanges();
    const out = this.outbox;
    this.outbox = [];
    for (const row of changes.rows) {
      out.push({ topic: counts, partition: p, key: rowKey(row.windowStart, row.advertiserId, row.campaignId, p), value: encodeWindowRow(row) });
    }
    for (const d of changes.dedupDeltas) {
      out.push({ topic: changelog, partition: p, key: chunkKey(d.windowStart, d.chunk), value: Buffer.from(d.ids.buffer, d.ids.byteOffset, d.ids.byteLength) });
    }
    for (const ev of changes.evicted) {
      for (const key of ev.rowKeys) out.push({ topic: counts, partition: p, key, value: null });
      for (let c = 0; c < ev.chunks; c++) out.push({ topic: changelog, partition: p, key: chunkKey(ev.windowStart, c), value: null });
    }
    if (changes.watermark !== this.emittedWatermark) {
      out.push({
        topic: counts, partition: p, key: watermarkKey(p),
        value: encodeWatermark({ source_partition: p, watermark: changes.watermark, max_event_time: this.state.maxEventTime, emitted_at: Date.now() }),
      });
    }
    return { records: out, offset: this.nextOffset, watermark: changes.watermark };
  }

  /** The transaction that carried `commit` committed. */
  postCommit(commit: TaskCommit): void {
    this.committedOffset = commit.offset;
    this.emittedWatermark = commit.watermark;
  }

  private deadLetter(msg: Kafka.Message, reason: DeadLetterReason, detail: string): DeadLetterReason {
    this.outbox.push({
      topic: this.topics.dlq,
      partition: this.partition,
      key: msg.key ?? null,
      value: msg.value ?? null,
      headers: [
        { reason },
        { detail: detail.slice(0, 500) },
        { 'source-topic': msg.topic },
        { 'source-partition': String(msg.partition) },
        { 'source-offset': String(msg.offset) },
      ],
    });
    return reason;
  }
}
