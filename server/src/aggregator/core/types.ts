/**
 * The pure aggregation core's vocabulary. No I/O anywhere under core/:
 * the Kafka shell feeds it impressions and writes out what it drains.
 */

/** Timing rules of one aggregator; all in ms. */
export interface WindowSettings {
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
  /** The settings that cannot change once data flows; a restart with others is refused. */
  windowMs: number;
  partitions: number;
}

/** 128-bit hash of an impression id, as four unsigned 32-bit words. */
export type IdHash = readonly [number, number, number, number];

/** One output row: the counts of one (window, advertiser, campaign) in one source partition. */
export interface WindowRow {
  windowStart: number;
  windowEnd: number;
  advertiserId: string;
  campaignId: string;
  sourcePartition: number;
  impressions: number;
  /** Exact at any size: one row's spend can pass 2^53 micros. */
  spendMicros: bigint;
  duplicates: number;
  /** Increases by one with every emitted change of this row; ClickHouse keeps the highest. */
  version: number;
  /** The watermark had passed windowEnd + allowedLateness when this version was emitted. */
  final: boolean;
  /** This version changed the row after it had been final (late data within the dedup horizon). */
  revised: boolean;
}

/** Ids first seen in one window since the last drain; serialised as one changelog chunk. */
export interface DedupDelta {
  windowStart: number;
  /** Chunk number within the window, 0, 1, 2, … ; the changelog key is `${windowStart}:${chunk}`. */
  chunk: number;
  /** 16 bytes per id: the IdHash words little-endian. */
  ids: Uint8Array;
}

/** A window dropped by eviction: its rows and changelog chunks can be deleted (tombstoned). */
export interface EvictedWindow {
  windowStart: number;
  /** dedupIds of the rows of that window. */
  rowKeys: string[];
  /** Number of changelog chunks written for it (keys `${windowStart}:0` … `:${chunks-1}`). */
  chunks: number;
}

/** What one commit must write: everything changed since the previous drain. */
export interface Changes {
  rows: WindowRow[];
  dedupDeltas: DedupDelta[];
  evicted: EvictedWindow[];
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
