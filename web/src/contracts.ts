/**
 * The server's contracts the dashboard builds against, all from server/src/contracts/: REST shapes
 * (api-types.ts), socket.io events (live-protocol.ts), billing export rows and statements
 * (billing-export.ts). Types only, but for the names of the two breakdown buckets (string constants).
 *
 * The pure modules (this one, format, maturity, live-aggregates, billing-request, date-range,
 * range-report, breakdown, table-csv) import with `.js`
 * as the server does: their unit tests (test/unit/web-*.test.ts) compile them under the root
 * tsconfig (NodeNext); Vite and vue-tsc resolve `.js` to the `.ts` file.
 */
export type {
  AdvertisersResponse, ApiErrorBody, BillingPeriodsResponse, BreakdownGranularity, BreakdownResponse, BreakdownRow, CampaignsResponse,
  CountRow, CountsResponse, Dimension, DimensionsResponse, Granularity, Maturity, MeResponse, PeriodStatus, PipelineStatus,
  ReconciliationRun,
} from '../../server/src/contracts/api-types.js';
export { OTHER_VALUE, UNKNOWN_VALUE } from '../../server/src/contracts/api-types.js';
export type {
  ClientToServerEvents, LiveSnapshot, LiveUpdate, LiveWindowRow, ServerToClientEvents,
} from '../../server/src/contracts/live-protocol.js';
export type {
  BillingFormat, BillingGranularity, EXPORT_STATUS_HEADER, ExportRow, ExportStatus, ExportTotals, JsonExport, JsonExportHeader,
} from '../../server/src/contracts/billing-export.js';
