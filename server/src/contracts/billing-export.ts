/**
 * A billing export as clients receive it (GET /api/v1/billing/export, `tally billing export`).
 * Produced by billing/ (export-format.ts writes the bytes, billing-router.ts the headers);
 * consumed by the dashboard (web/: useBillingExport, type-only) and the tests. The file layouts,
 * CSV and JSON, and the digest are described in billing/export-format.ts.
 *
 * Numbers are exact decimal strings (spend from integer micros); every row and the totals carry
 * their maturity.
 */
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
  final_at?: string;
  late_unbillable: { events: string; periods: Array<{ period_start: string; events: string }> };
  lineage: Array<{
    partition: number;
    source: { topic: string; first_offset: number | null; close_offset: number };
    repartition: { topic: string; first_offset: number | null; close_offset: number };
  }>;
}

/** A whole JSON statement (format=json): the header, generated_at (provisional only), rows, totals, digest. */
export interface JsonExport extends JsonExportHeader {
  generated_at?: string;
  rows: ExportRow[];
  totals: ExportTotals;
  sha256: string;
}
