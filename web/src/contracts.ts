/**
 * The server's contracts the dashboard builds against (type-only: nothing of the server is bundled),
 * all from server/src/contracts/: REST shapes (api-types.ts), socket.io events (live-protocol.ts),
 * billing export rows and statements (billing-export.ts).
 *
 * The pure modules (this one, format, maturity, live-aggregates, billing-request) import with `.js`
 * as the server does: their unit tests (test/unit/web-*.test.ts) compile them under the root
 * tsconfig (NodeNext); Vite and vue-tsc resolve `.js` to the `.ts` file.
 */
export type {
  AdvertisersResponse, ApiErrorBody, BillingPeriodsResponse, CampaignsResponse, CountRow, CountsResponse, Granularity, Maturity,
  MeResponse, PeriodStatus, PipelineStatus, ReconciliationRun,
} from '../../server/src/contracts/api-types.js';
export type {
  ClientToServerEvents, LiveSnapshot, LiveUpdate, LiveWindowRow, ServerToClientEvents,
} from '../../server/src/contracts/live-protocol.js';
export type {
  BillingFormat, BillingGranularity, EXPORT_STATUS_HEADER, ExportRow, ExportStatus, ExportTotals, JsonExport, JsonExportHeader,
} from '../../server/src/contracts/billing-export.js';
