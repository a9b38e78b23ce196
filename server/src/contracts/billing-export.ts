/**
 * A billing export as clients receive it (GET /api/v1/billing/export, `tally billing export`).
 * Produced by billing/ (export-format.ts writes the bytes, billing-router.ts the headers);
 * consumed by the dashboard (web/: useBillingExport, type-only) and the tests. The file layouts,
 * CSV and JSON, and the digest are described in billing/export-format.ts.
 *
 * Numbers are exact decimal strings (spend from integer micros); every row and the totals carry
 * their maturity. Asked for (`breakdown`), a statement also breaks each row down by the values of
 * one or more dimensions: a dimension's values of a row sum to that row exactly.
 */
import type { Dimension } from './dimensions.js';
import type { Maturity } from './maturity.js';

export type BillingGranularity = 'hour' | 'day';
export type BillingFormat = 'csv' | 'json';
export type ExportStatus = 'final' | 'provisional';

/** Response header: the statement's status (final | provisional). */
export const EXPORT_STATUS_HEADER = 'X-Tally-Export-Status';
/** HTTP trailer: the SHA-256 digest that also ends the file. */
export const EXPORT_SHA256_HEADER = 'X-Tally-Export-SHA256';

export interface ExportRow {
  period_start: string;
  advertiser_id: string;
  campaign_id: string;
  impressions: string;
  spend_micros: string;
  spend: string;
  duplicates_removed: string;
  maturity: Maturity;
}

/** One value of one dimension of a statement row (same period_start, advertiser_id and campaign_id). */
export interface ExportBreakdownRow {
  period_start: string;
  advertiser_id: string;
  campaign_id: string;
  dimension: Dimension;
  value: string;
  impressions: string;
  spend_micros: string;
  spend: string;
  /** The row's maturity. */
  maturity: Maturity;
}

export interface ExportTotals {
  impressions: string;
  spend_micros: string;
  spend: string;
  duplicates_removed: string;
  /** The statement's maturity. */
  maturity: Maturity;
}

/** The JSON statement's fields before its rows (generated_at aside); the digest covers them. */
export interface JsonExportHeader {
  status: ExportStatus;
  advertiser_id: string;
  from: string;
  to: string;
  granularity: BillingGranularity;
  /** The dimensions the statement breaks its rows down by, in the order asked; absent when none was. */
  breakdown?: Dimension[];
  final_at?: string;
  late_unbillable: { events: string; periods: Array<{ period_start: string; events: string }> };
  lineage: Array<{
    partition: number;
    source: { topic: string; first_offset: number | null; close_offset: number };
    repartition: { topic: string; first_offset: number | null; close_offset: number };
  }>;
}

/**
 * A whole JSON statement (format=json): the header, generated_at (provisional only), rows, totals,
 * the breakdowns when asked for, digest.
 */
export interface JsonExport extends JsonExportHeader {
  generated_at?: string;
  rows: ExportRow[];
  totals: ExportTotals;
  /** Present iff `breakdown` is: by period, campaign, dimension (in the order asked), then most impressions first. */
  breakdowns?: ExportBreakdownRow[];
  sha256: string;
}
