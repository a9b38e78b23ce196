import type Kafka from 'node-rdkafka';
import type { Topics } from '../config/index.js';
import { encodeWindowRow, rowKey, watermarkKey } from '../contracts/count-record.js';
import { deadLetterHeaders } from '../contracts/dead-letter.js';
import type { DeadLetterReason } from '../contracts/dead-letter-reasons.js';
import { microsJson } from '../contracts/micros.js';
import { encodePeriodClose, periodCloseKey } from '../contracts/period-close-record.js';
import {
  decodeMarker, encodeMarker, FORWARDED_FROM_HEADER, forwardedFrom, isMarkerKey, markerKey,
} from '../contracts/repartition-record.js';
import {
  homePartition, NO_DIMENSIONS, parseImpression, type DimensionFields, type Impression,
} from '../impression/index.js';
import type { OutgoingRecord } from '../kafka/index.js';
import { chunkKey } from './changelog.js';
import { hashImpressionId, PERIOD_MS, periodOf, type PartitionState, type PeriodClose, type TaskInput } from './core/index.js';
import { encodeProgress } from './progress-record.js';

export type RecordOutcome = 'counted' | 'duplicate' | 'forwarded' | 'marker' | DeadLetterReason;

/** One task's part of a transaction: its records, and the input offsets it commits. */
export interface TaskCommit {
  records: OutgoingRecord[];
  /** Next offset of the task's source partition of `impressions`. */
  sourceOffset: number;
  /** Next offset of the task's partition of the repartition topic. */
  channelOffset: number;
}

/**
 * One partition owned by this process: its state store, and its two inputs — partition p of
 * `impressions` (the source: records as producers wrote them) and partition p of the repartition
 * topic (records other sources forwarded here, and their watermark markers). It tracks the offsets
 * to commit next and the records waiting for the next transaction. Kafka Streams would call it a
 * stream task; it does no I/O itself.
 */
export class PartitionTask {
  nextSourceOffset: number;
  nextChannelOffset: number;
  /** Wall clock of the last record that moved the source's event time, for idle detection. */
  lastSourceEventAt: number;
  private outbox: OutgoingRecord[] = [];
  private committedSourceOffset: number;
  private committedChannelOffset: number;

  constructor(
    readonly partition: number,
    readonly state: PartitionState,
    offsets: { source: number; channel: number },
    private readonly topics: Topics,
    private readonly partitions: number,
    now: number,
    /** The breakdown fields the state counts (TALLY_DIMENSIONS), read from each record. */
    private readonly dimensions: DimensionFields = NO_DIMENSIONS,
  ) {
    this.nextSourceOffset = offsets.source;
    this.nextChannelOffset = offsets.channel;
    this.committedSourceOffset = offsets.source;
    this.committedChannelOffset = offsets.channel;
    this.lastSourceEventAt = now;
  }

  /** A record of the source partition: counted here if this is its home, else forwarded there. */
  processSource(msg: Kafka.Message, now: number): RecordOutcome {
    this.nextSourceOffset = msg.offset + 1;
    const parsed = parseImpression(msg.value, this.dimensions);
    if (!parsed.ok) return this.deadLetter(msg, parsed.reason, parsed.detail);
    const imp = parsed.impression;
    if (this.state.observeSourceEvent(imp.ts, now)) this.lastSourceEventAt = now;
    const home = homePartition(imp.impressionId, this.partitions);
    if (home !== this.partition) {
      // Dedup is exact only where every copy of an id meets: its home partition's state.
      this.outbox.push({
        topic: this.topics.repartition, partition: home, key: imp.impressionId, value: msg.value ?? null,
        headers: [{ [FORWARDED_FROM_HEADER]: `${this.partition}:${msg.offset}` }],
      });
      return 'forwarded';
    }
    return this.count(msg, parsed.impression, now, 'source');
  }

  /** A record of the repartition channel: a forwarded impression to count, or a source's marker. */
  processChannel(msg: Kafka.Message, now: number): RecordOutcome {
    this.nextChannelOffset = msg.offset + 1;
    if (isMarkerKey(msg.key)) {
      const { source, mark } = decodeMarker(msg.value);
      this.state.observeMarker(source, mark, now);
      return 'marker';
    }
    const parsed = parseImpression(msg.value, this.dimensions);
    if (!parsed.ok) return this.deadLetter(msg, parsed.reason, parsed.detail);
    return this.count(msg, parsed.impression, now, 'channel');
  }

  private count(msg: Kafka.Message, imp: Impression, now: number, input: TaskInput): RecordOutcome {
    const outcome = this.state.process(imp, hashImpressionId(imp.impressionId), now, { input, offset: msg.offset });
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
   * Returns null when there is nothing to write and no offset moved.
   */
  prepareCommit(now: number, sourceIdle: boolean, ends: ReadonlyMap<number, number>): TaskCommit | null {
    const { counts, changelog, repartition } = this.topics;
    const p = this.partition;
    const changes = this.state.drainChanges(now, { idle: sourceIdle, position: this.nextSourceOffset }, ends);
    const out = this.outbox;
    this.outbox = [];
    for (const row of changes.rows) {
      out.push({ topic: counts, partition: p, key: rowKey(row.windowStart, row.advertiserId, row.campaignId, p), value: encodeWindowRow(row) });
    }
    for (const d of changes.dedupDeltas) {
      out.push({ topic: changelog, partition: p, key: chunkKey(d.windowStart, d.chunk), value: Buffer.from(d.ids.buffer, d.ids.byteOffset, d.ids.byteLength) });
    }
    for (const ev of changes.evicted) {
      for (let c = 0; c < ev.chunks; c++) out.push({ topic: changelog, partition: p, key: chunkKey(ev.windowStart, c), value: null });
    }
    for (const close of changes.closes) {
      // The period's window rows live on in its close: same transaction, so nothing is ever in neither.
      for (const key of close.rowKeys) out.push({ topic: counts, partition: p, key, value: null });
      out.push({ topic: counts, partition: p, key: periodCloseKey(close.periodStart, p), value: this.closeRecord(close, now) });
    }
    if (changes.progress !== null) {
      out.push({ topic: counts, partition: p, key: watermarkKey(p), value: encodeProgress(p, changes.progress, now) });
    }
    if (changes.sourceMark !== null) {
      // After this transaction's forwards on every channel: the marker covers them.
      const value = encodeMarker(p, changes.sourceMark);
      for (let h = 0; h < this.partitions; h++) if (h !== p) out.push({ topic: repartition, partition: h, key: markerKey(p), value });
    }
    if (out.length === 0 && this.nextSourceOffset === this.committedSourceOffset && this.nextChannelOffset === this.committedChannelOffset) return null;
    return { records: out, sourceOffset: this.nextSourceOffset, channelOffset: this.nextChannelOffset };
  }

  private closeRecord(close: PeriodClose, now: number): Buffer {
    const p = this.partition;
    return encodePeriodClose({
      period_start: close.periodStart,
      period_end: close.periodStart + PERIOD_MS,
      source_partition: p,
      closed_at: now,
      watermark: close.watermark,
      rows: close.rows.map((r) => ({
        advertiser_id: r.advertiserId, campaign_id: r.campaignId, impressions: r.impressions, spend_micros: microsJson(r.spendMicros), duplicates: r.duplicates,
      })),
      late_unbillable: close.late.map((l) => ({ advertiser_id: l.advertiserId, original_period_start: l.originalPeriodStart, events: l.events })),
      lineage: {
        source: { topic: this.topics.impressions, partition: p, first_offset: close.firstSourceOffset, close_offset: this.nextSourceOffset },
        repartition: { topic: this.topics.repartition, partition: p, first_offset: close.firstChannelOffset, close_offset: this.nextChannelOffset },
      },
    });
  }

  /** The transaction that carried `commit` committed. */
  postCommit(commit: TaskCommit): void {
    this.committedSourceOffset = commit.sourceOffset;
    this.committedChannelOffset = commit.channelOffset;
  }

  /**
   * Dead letters name the input record they came from: for a forwarded copy, the original one on
   * `impressions` (its forwarded-from header), so a replay finds the same key. A too_late one also
   * names the period its refusal is billed in: the watermark's, as PartitionState.process noted it
   * (called just before, so the watermark has not moved since).
   */
  private deadLetter(msg: Kafka.Message, reason: DeadLetterReason, detail: string): DeadLetterReason {
    const origin = msg.topic === this.topics.repartition ? forwardedFrom(msg.headers as Array<Record<string, unknown>> | undefined) : null;
    this.outbox.push({
      topic: this.topics.dlq,
      partition: this.partition,
      key: msg.key ?? null,
      value: msg.value ?? null,
      headers: deadLetterHeaders({
        reason,
        detail,
        sourceTopic: origin ? this.topics.impressions : msg.topic,
        sourcePartition: origin ? origin.partition : msg.partition,
        sourceOffset: origin ? origin.offset : msg.offset,
        arrivalPeriod: reason === 'too_late' ? periodOf(this.state.watermark) : undefined,
      }),
    });
    return reason;
  }
}
