// Billing exports: exact per-campaign statements (CSV/JSON), final ones from the immutable ledger.
export { billingRouter, exportFileName, type BillingRouterDeps } from './billing-router.js';
export {
  parseExportParams, parsePeriodsParams, parseExportTime, isoUtc, BillingParamError, HOUR_MS, DAY_MS, MAX_EXPORT_DAYS, PERIOD_MS,
  type ExportQuery, type PeriodsQuery,
} from './export-params.js';
export {
  ExportEncoder, csvField, csvFieldSql, csvLine, contentType, lineageText, rowLineSql, CSV_COLUMNS, FORMULA_TRIGGER,
  type ExportMeta,
} from './export-format.js';
export {
  runExport, exportStatus, statementSql, type ExportResult, type RunExportOptions,
} from './export-query.js';
// The export's wire format (contracts/billing-export.ts) and exact micros, from the contracts.
export {
  EXPORT_STATUS_HEADER, EXPORT_SHA256_HEADER,
  type BillingFormat, type BillingGranularity, type ExportRow, type ExportStatus, type ExportTotals, type JsonExport, type JsonExportHeader,
} from '../contracts/billing-export.js';
export { formatMicros, parseUInt64 } from '../contracts/micros.js';
