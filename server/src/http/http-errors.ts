/**
 * The API's error shape (contracts/api-types.ts, ApiErrorBody):
 * `{ "error": { "status": 400, "message": "…", "parameter"?: "from" } }`. Handlers (api/, and the
 * routes it mounts: ingest/, billing/) throw an ApiError; the API's error handler turns it (and
 * body-parser's errors, and ClickHouse/Kafka outages) into that shape. Only a real server fault
 * becomes a 500.
 */
import type { Response } from 'express';
import { clickHouseErrorCode } from '../clickhouse/index.js';
import type { ApiErrorBody } from '../contracts/api-types.js';
import { TallyError } from '../errors/index.js';

/** An answer other than 2xx; a 503 is worth retrying (Retry-After says when). */
export class ApiError extends TallyError {
  constructor(
    readonly status: number,
    message: string,
    readonly parameter?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message, { retriable: status === 503 });
  }
}

export const badRequest = (message: string, parameter?: string) => new ApiError(400, message, parameter);
export const unauthorized = (message: string) => new ApiError(401, message, undefined, { 'WWW-Authenticate': 'Bearer realm="tally"' });
export const forbidden = (message: string) => new ApiError(403, message);
export const notFound = (message = 'not found') => new ApiError(404, message);
/** 503 with Retry-After: a dependency (Kafka, ClickHouse) is down or slow; the same request may succeed later. */
export const unavailable = (message: string, retryAfterS = 5) => new ApiError(503, message, undefined, { 'Retry-After': String(retryAfterS) });

export function errorBody(status: number, message: string, parameter?: string): ApiErrorBody {
  return { error: parameter === undefined ? { status, message } : { status, message, parameter } };
}

/** Sends a JSON body unless a response already went out (a request that timed out meanwhile). */
export function reply(res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.status(status).json(body);
}

export function sendError(res: Response, err: ApiError): void {
  reply(res, err.status, errorBody(err.status, err.message, err.parameter), err.headers);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET',
]);
/** @clickhouse/client's request timeout is the one failure it raises without a code: its exact message is all there is. */
const CLIENT_TIMEOUT_MESSAGE = 'Timeout error.';
/**
 * ClickHouse server error codes that mean "busy or unavailable", not "bad query":
 * TIMEOUT_EXCEEDED, SOCKET_TIMEOUT, NETWORK_ERROR, TOO_MANY_SIMULTANEOUS_QUERIES,
 * MEMORY_LIMIT_EXCEEDED, ALL_CONNECTION_TRIES_FAILED, TABLE_IS_READ_ONLY, READONLY…
 */
const CLICKHOUSE_UNAVAILABLE_CODES = new Set(['159', '209', '210', '202', '241', '279', '242', '164']);

/** True when an error from the ClickHouse client means the server cannot be reached or is overloaded. */
export function isClickHouseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  if (CLICKHOUSE_UNAVAILABLE_CODES.has(clickHouseErrorCode(err) ?? '')) return true;
  if (err.message === CLIENT_TIMEOUT_MESSAGE) return true;
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isClickHouseUnavailable(cause);
}

/** Runs a ClickHouse call; an outage becomes a 503 ApiError, anything else propagates (a 500). */
export async function withClickHouse<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isClickHouseUnavailable(err)) throw unavailable('ClickHouse is unavailable; retry later');
    throw err;
  }
}
