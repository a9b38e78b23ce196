/**
 * Response shapes of the REST API (/api/v1/…). Produced by api/ and the routes it mounts (ingest/:
 * IngestResponse; billing/: BillingPeriodsResponse; live/: PipelineStatus; http/: ApiErrorBody);
 * consumed by the dashboard (web/ imports these types through web/src/contracts.ts) and the tests.
 * Integers are JSON numbers (exact below 2^53); spend is in micros: a JSON number while below
 * 2^53, a string of digits above (never a rounded number; BigInt() takes both). Times are epoch ms.
 * Errors: `{ "error": { "status": 400, "message": "…", "parameter"?: "from" } }` with 400/401/403/404/413/429/503.
 */

import type { DeadLetterReason } from './dead-letter-reasons.js';
import type { PeriodStatus, ReconciliationRun } from './ledger-status.js';
import type { Maturity } from './maturity.js';
import type { Dimension, OTHER_VALUE, UNKNOWN_VALUE } from './dimensions.js';

export type { PeriodStatus, ReconciliationRun } from './ledger-status.js';
export type { Maturity } from './maturity.js';
export type { Dimension } from './dimensions.js';
export { DIMENSIONS, OTHER_VALUE, UNKNOWN_VALUE } from './dimensions.js';

/** The body of every error answer (built by errorBody, http/http-errors.ts). */
export interface ApiErrorBody {
  error: { status: number; message: string; parameter?: string };
}

export type Granularity = 'window' | 'hour' | 'day';

/** Spend in micros: a number below 2^53, else a string of digits. */
export type Micros = number | string;

export interface CountRow {
  /** Start of the window/hour/day (UTC), epoch ms. */
  periodStart: number;
  periodEnd: number;
  advertiserId: string;
  campaignId: string;
  impressions: number;
  spendMicros: Micros;
  duplicates: number;
  /** live (windows open), provisional (closed, period not final yet) or final (in the billing ledger, never changes). */
  maturity: Maturity;
}

/** GET /api/v1/counts?advertiser_id=&campaign_id=&from=&to=&granularity= */
export interface CountsResponse {
  advertiserId: string | null;
  campaignId: string | null;
  from: number;
  to: number;
  granularity: Granularity;
  rows: CountRow[];
  /** maturity: the least settled row's (or the range's, without rows). */
  totals: { impressions: number; spendMicros: Micros; duplicates: number; maturity: Maturity };
}

/** GET /api/v1/campaigns?advertiser_id= */
export interface CampaignsResponse {
  campaigns: Array<{ advertiserId: string; campaignId: string; impressions: number; spendMicros: Micros; firstWindow: number; lastWindow: number }>;
}

/** GET /api/v1/advertisers (admin: all; advertiser token: its own). */
export interface AdvertisersResponse {
  advertisers: Array<{ advertiserId: string; campaigns: number; impressions: number; spendMicros: Micros }>;
}

/** GET /api/v1/me: who the token is. */
export interface MeResponse {
  name: string;
  admin: boolean;
  ingest: boolean;
  /** null for admin (all). */
  advertisers: string[] | null;
}

/**
 * Why POST /api/v1/impressions refused one event: the DLQ reason vocabulary (too_late is never
 * decided at ingest), plus advertiser_not_allowed for an advertiser the token may not ingest.
 */
export type IngestRejectReason = DeadLetterReason | 'advertiser_not_allowed';

/**
 * POST /api/v1/impressions → 202 (some or all accepted), 400 (none valid) or 403 (every event
 * refused only as advertiser_not_allowed); 400 and 403 carry the error object too.
 */
export interface IngestResponse {
  accepted: number;
  rejected: number;
  /** One entry per refused event: its index in the request and why. */
  errors: Array<{ index: number; reason: IngestRejectReason; message: string }>;
}

/** GET /api/v1/pipeline (admin). */
export interface PipelineStatus {
  partitions: Array<{
    partition: number;
    /** Input records not yet committed by the aggregator. */
    aggregatorLag: number;
    /** impression-counts records not yet committed by the sink. */
    sinkLag: number;
    watermark: number;
  }>;
  /** ms since the newest committed aggregator transaction (from the watermark records' emitted_at); null if none seen. */
  lastTransactionAgeMs: number | null;
  /** Input records committed by the aggregator per second, over the last ~10 s. */
  throughputPerSec: number;
  duplicatesRemoved: number;
  deadLetters: Record<string, number>;
  clickhouseReachable: boolean;
  /** Closed windows: totals committed in Kafka (live feed) vs ClickHouse FINAL. equal = the "exact ✓" signal. */
  exact: { windows: number; kafkaImpressions: number; clickhouseImpressions: number; equal: boolean } | null;
  /** The last `tally reconcile` run; null if none ran (or ClickHouse is unreachable). */
  reconciliation: ReconciliationRun | null;
  serverTime: number;
}

/** GET /api/v1/billing/periods?from=&to= (any reader: finality is the same for every advertiser). */
export interface BillingPeriodsResponse {
  /** [from, to), whole UTC hours. */
  from: number;
  to: number;
  partitions: number;
  /** A period becomes final once every partition's watermark passed its end by this (allowed lateness + dedup horizon). */
  closeAfterMs: number;
  /** Periods starting before this are final; null while some partition closed none. */
  finalBefore: number | null;
  /** The slowest partition's published watermark; null while some partition published none. */
  minWatermark: number | null;
  /** Oldest first. */
  periods: PeriodStatus[];
  serverTime: number;
}

/** /breakdown adds `total` (one row per value over the whole range) to the counts granularities; it is the default. */
export type BreakdownGranularity = Granularity | 'total';

export interface BreakdownRow {
  /** The window/hour/day (UTC), epoch ms; for `total`, the query's [from, to). */
  periodStart: number;
  periodEnd: number;
  /** The dimension's value, `unknown` or `other`. */
  value: string;
  impressions: number;
  spendMicros: Micros;
  maturity: Maturity;
}

/** GET /api/v1/breakdown?dimension=&advertiser_id=&campaign_id=&from=&to=&granularity= */
export interface BreakdownResponse {
  dimension: Dimension;
  advertiserId: string | null;
  campaignId: string | null;
  from: number;
  to: number;
  granularity: BreakdownGranularity;
  /** By period, then impressions (most first), then value. */
  rows: BreakdownRow[];
  /** Equal to /counts' totals for the same filter and range. */
  totals: { impressions: number; spendMicros: Micros; maturity: Maturity };
}

/** GET /api/v1/dimensions: what /breakdown can be asked for. */
export interface DimensionsResponse {
  /** TALLY_DIMENSIONS, in its order. */
  dimensions: Dimension[];
  /** TALLY_DIMENSION_LIMIT: distinct values one campaign keeps per dimension, window and partition before `other`. */
  valueLimit: number;
  unknownValue: typeof UNKNOWN_VALUE;
  otherValue: typeof OTHER_VALUE;
}
