/**
 * The server's contracts the dashboard builds against (type-only: nothing of the server is bundled).
 * REST shapes: server/src/api/api-types.ts; socket.io events: server/src/live/live-protocol.ts;
 * billing export rows: server/src/billing/export-format.ts.
 */
export type {
  AdvertisersResponse, BillingPeriodsResponse, CampaignsResponse, CountRow, CountsResponse, Granularity, Maturity, MeResponse,
  PeriodStatus, PipelineStatus, ReconciliationRun,
} from '../../server/src/api/api-types';
export type {
  ClientToServerEvents, LiveSnapshot, LiveUpdate, LiveWindowRow, ServerToClientEvents,
} from '../../server/src/live/live-protocol';
export type { ExportRow, ExportStatus, ExportTotals, JsonExportHeader } from '../../server/src/billing/export-format';
