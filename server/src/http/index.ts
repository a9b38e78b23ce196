// Shared HTTP plumbing for the API and the routes it mounts (ingest, billing): the error answers,
// the authenticated caller of a request, time parameters. Depends on no route folder.
export {
  ApiError, badRequest, errorBody, forbidden, isClickHouseUnavailable, notFound, reply, sendError, unauthorized, unavailable,
  withClickHouse,
} from './http-errors.js';
export { bindPrincipal, hasPrincipal, principalOf } from './request-principal.js';
export { MAX_TIME_MS, parseTimeParam } from './time-param.js';
