/**
 * The pure aggregation core's vocabulary. No I/O anywhere under core/:
 * the Kafka shell feeds it impressions and writes out what it drains.
 */

/** Timing rules of one aggregator; all in ms. */
export interface WindowSettings {
  windowMs: number;
  /** Watermark = max event time seen − outOfOrdernessMs. */
  outOfOrdernessMs: number;
  /** A window is final once watermark ≥ windowEnd + allowedLatenessMs. */
  allowedLatenessMs: number;
  /** A window's dedup set is kept until watermark ≥ windowEnd + allowedLatenessMs + dedupHorizonMs; then evicted. */
  dedupHorizonMs: number;
  /** Events with ts > now + maxClockSkewMs are refused as future_timestamp. */
  maxClockSkewMs: number;
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
  spendMicros: number;
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
}

export type ProcessOutcome =
  | { kind: 'counted'; row: WindowRow }
  | { kind: 'duplicate'; row: WindowRow }
  | { kind: 'too_late'; detail: string }
  | { kind: 'future_timestamp'; detail: string };
