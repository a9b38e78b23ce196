/**
 * The server's contracts the dashboard builds against (type-only: nothing of the server is bundled),
 * all from server/src/contracts/: REST shapes (api-types.ts), socket.io events (live-protocol.ts),
 * billing export rows and statements (billing-export.ts).
 */
export type {
  AdvertisersResponse, ApiErrorBody, BillingPeriodsResponse, CampaignsResponse, CountRow, CountsResponse, Granularity, Maturity,
  MeResponse, PeriodStatus, PipelineStatus, ReconciliationRun,
} from '../../server/src/contracts/api-types';
export type {
  ClientToServerEvents, LiveSnapshot, LiveUpdate, LiveWindowRow, ServerToClientEvents,
} from '../../server/src/contracts/live-protocol';
export type {
  BillingFormat, BillingGranularity, EXPORT_STATUS_HEADER, ExportRow, ExportStatus, ExportTotals, JsonExport, JsonExportHeader,
} from '../../server/src/contracts/billing-export';
