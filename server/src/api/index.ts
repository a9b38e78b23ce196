// The HTTP API: REST (/api/v1), ingest, health, metrics; the live feed and the dashboard share its server.
export { createApiApp, routeLabel, isLoopback, type ApiDeps, type ApiApp } from './app.js';
export { startApiServer, type ApiServer } from './server.js';
export { ApiMetrics } from './api-metrics.js';
export { readinessCheck, type Readiness } from './health.js';
export {
  parseCountsQuery, parseAdvertiserFilter, parseBreakdownQuery, type CountsQuery, type BreakdownQuery,
  MAX_RANGE_DAYS, MAX_RANGE_MS, DEFAULT_RANGE_MS, DEFAULT_GRANULARITY, GRANULARITIES,
} from './query-params.js';
export { countsSql, campaignsSql, advertisersSql, countsResponse, exactNumber, MAX_COUNT_ROWS } from './read-queries.js';
export { breakdownSql, breakdownResponse, MAX_BREAKDOWN_ROWS } from './breakdown-queries.js';
export type * from '../contracts/api-types.js';
