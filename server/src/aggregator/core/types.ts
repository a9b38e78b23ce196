/**
 * The pure aggregation core's vocabulary. No I/O anywhere under core/:
 * the Kafka shell feeds it impressions and writes out what it drains.
 */
import type { WindowRow } from '../../contracts/count-record.js';
import type { Dimension } from '../../contracts/dimensions.js';

/** What a window row is broken down by (TALLY_DIMENSIONS, TALLY_DIMENSION_LIMIT). */
export interface BreakdownSettings {
  dimensions: readonly Dimension[];
  /** Distinct values a row keeps by name per dimension; later new values count as `other`. */
  dimensionValueLimit: number;
}

/** The rules of one aggregator's windows: timing (all in ms) and breakdowns. */
export interface WindowSettings extends BreakdownSettings {
  windowMs: number;
  /** A source's watermark = min(max event time seen, wall clock) − outOfOrdernessMs. */
  outOfOrdernessMs: number;
  /** A window is final once the watermark ≥ windowEnd + allowedLatenessMs. */
  allowedLatenessMs: number;
  /** A window's ids are kept until watermark ≥ windowEnd + allowedLatenessMs + dedupHorizonMs; then evicted. */
  dedupHorizonMs: number;
  /** Events with ts > now + maxClockSkewMs are refused as future_timestamp. */
  maxClockSkewMs: number;
  /** Partitions of the input topic: the task's inputs are its own source and one channel from each other. */
  partitions: number;
  /** An input caught up and without records for this long holds nothing back (see InputWatermarks). */
  idleTimeoutMs: number;
}

/** One input's event-time progress as a task knows it. */
export interface InputMark {
  watermark: number;
  idle: boolean;
  /**
   * The offset of its source partition it had read to when it said so. An idle mark counts only
   * while that partition's end is still there: a source whose consumer stalls after saying "idle"
   * (a paused or dead process) while records arrive holds everyone back again.
   */
  position: number | null;
}

/**
 * Everything about a task's event time that must survive a restart, written with its rows in
 * every transaction that changes it (the `watermark|p` record of impression-counts).
 */
export interface PartitionProgress {
  /** The task's watermark: the minimum over its inputs, never going back. */
  watermark: number;
  /** Highest event time read from this partition's own source (future_timestamp refusals excluded). */
  maxEventTime: number;
  /** This source's watermark: min(maxEventTime, wall clock) − out-of-orderness, never going back. */
  sourceWatermark: number;
  /** Every input's last mark, by source partition (this partition's own entry is its source). */
  inputs: InputMark[];
  /** Windows ending at or before this are closed (final); it never goes back, whatever the lateness setting. */
  closedThrough: number;
  /** Windows starting before this passed the dedup horizon: evicted, their events too_late, whatever the horizon setting. */
  evictedBefore: number;
  /** Billing periods starting before this are closed in this partition (0: none yet). */
  periodsClosedBefore: number;
  /** Periods not closed yet that have lineage or late counts. */
  openPeriods: OpenPeriod[];
  /** The settings that cannot change once data flows; a restart with others is refused. */
  windowMs: number;
  partitions: number;
}

/** 128-bit hash of an impression id, as four unsigned 32-bit words. */
export type IdHash = readonly [number, number, number, number];

/** Ids first seen in one window since the last drain; serialised as one changelog chunk. */
export interface DedupDelta {
  windowStart: number;
  /** Chunk number within the window, 0, 1, 2, … ; the changelog key is `${windowStart}:${chunk}`. */
  chunk: number;
  /** 16 bytes per id: the IdHash words little-endian. */
  ids: Uint8Array;
}

/**
 * A window past the dedup horizon: its ids are forgotten and its changelog chunks can be deleted
 * (tombstoned). Its rows stay (frozen: nothing can change them any more) until its billing period
 * closes.
 */
export interface EvictedWindow {
  windowStart: number;
  /** Number of changelog chunks written for it (keys `${windowStart}:0` … `:${chunks-1}`). */
  chunks: number;
}

/** What the shell knows of a task's own source partition at a drain. */
export interface SourceStatus {
  /** Caught up and no record moved its event time for the idle timeout. */
  idle: boolean;
  /** The next offset to read. */
  position: number;
}

/** Billing periods are UTC hours; days and months are unions of them. */
export const PERIOD_MS = 3_600_000;

/** Which input a record was read from: the task's source partition, or its repartition channel. */
export type TaskInput = 'source' | 'channel';

/** Where a record came from, for a period's lineage. */
export interface RecordOrigin {
  input: TaskInput;
  offset: number;
}

/** One (advertiser, campaign) of a closed period in one partition: the sum over the period's windows. */
export interface PeriodRow {
  advertiserId: string;
  campaignId: string;
  impressions: number;
  spendMicros: bigint;
  duplicates: number;
}

/** Events refused as too_late while the task's watermark was in a period, by their own period. */
export interface LateCount {
  advertiserId: string;
  originalPeriodStart: number;
  events: number;
}

/** A period still open in a task: the lineage and late counts gathered so far (kept in the progress record). */
export interface OpenPeriod {
  periodStart: number;
  /** First offset of each input that contributed (counted or duplicate) to the period; null: none yet. */
  firstSourceOffset: number | null;
  firstChannelOffset: number | null;
  late: LateCount[];
}

/**
 * A billing period closed in one partition: nothing can change it any more (every window of it
 * passed the dedup horizon). Committed in the same transaction as the state that makes it true.
 */
export interface PeriodClose extends OpenPeriod {
  rows: PeriodRow[];
  /** The task's watermark at the close. */
  watermark: number;
  /** Row keys of the period's windows, settled into the close: tombstoned with it. */
  rowKeys: string[];
}

/** What one commit must write: everything changed since the previous drain. */
export interface Changes {
  rows: WindowRow[];
  dedupDeltas: DedupDelta[];
  evicted: EvictedWindow[];
  /** Periods closed by this drain, oldest first. */
  closes: PeriodClose[];
  watermark: number;
  /** This source's progress for the other partitions' tasks (a marker on each channel), when it moved; else null. */
  sourceMark: InputMark | null;
  /** The task's progress, when any of it changed since the last drain; else null. */
  progress: PartitionProgress | null;
}

export type ProcessOutcome =
  | { kind: 'counted' }
  | { kind: 'duplicate' }
  | { kind: 'too_late'; detail: string }
  | { kind: 'future_timestamp'; detail: string };
