// Billing exports: exact per-campaign statements (CSV/JSON), final ones from the immutable ledger.
export { billingRouter, exportFileName, EXPORT_STATUS_HEADER, EXPORT_SHA256_HEADER, type BillingRouterDeps } from './billing-router.js';
export {
  parseExportParams, parsePeriodsParams, parseExportTime, isoUtc, BillingParamError, HOUR_MS, DAY_MS, MAX_EXPORT_DAYS, PERIOD_MS,
  type ExportQuery, type PeriodsQuery, type BillingGranularity, type BillingFormat,
} from './export-params.js';
export {
  ExportEncoder, csvField, csvFieldSql, csvLine, contentType, lineageText, rowLineSql, CSV_COLUMNS, FORMULA_TRIGGER,
  type ExportMeta, type ExportRow, type ExportTotals, type ExportStatus, type JsonExportHeader,
} from './export-format.js';
export {
  runExport, exportStatus, statementSql, type ExportResult, type RunExportOptions,
} from './export-query.js';
export { formatMicros, parseUInt64 } from '../contracts/micros.js';
