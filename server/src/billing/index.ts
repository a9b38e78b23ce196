// Billing exports: exact per-campaign statements (CSV/JSON), final ones from the immutable ledger.
export { billingRouter, exportFileName, type BillingRouterDeps } from './billing-router.js';
export {
  parseExportParams, parsePeriodsParams, parseExportTime, isoUtc, BillingParamError, HOUR_MS, DAY_MS, MAX_EXPORT_DAYS, PERIOD_MS,
  type ExportQuery, type PeriodsQuery,
} from './export-params.js';
export { ExportEncoder, contentType, lineageText, type ExportMeta } from './export-format.js';
export { csvFieldSql, csvLine, rowLineSql, breakdownLineSql, CSV_COLUMNS, BREAKDOWN_CSV_COLUMNS } from './export-lines.js';
export { csvField, FORMULA_TRIGGER } from '../contracts/csv-field.js';
export {
  runExport, exportStatus, statementSql, type ExportResult, type RunExportOptions,
} from './export-query.js';
export { breakdownSql, BreakdownMismatchError } from './export-breakdown.js';
// The export's wire format (contracts/billing-export.ts) and exact micros, from the contracts.
export {
  EXPORT_STATUS_HEADER, EXPORT_SHA256_HEADER,
  type BillingFormat, type BillingGranularity, type ExportBreakdownRow, type ExportRow, type ExportStatus, type ExportTotals, type JsonExport, type JsonExportHeader,
} from '../contracts/billing-export.js';
export { formatMicros, parseUInt64 } from '../contracts/micros.js';
