/**
 * Bearer-token authentication and scope checks for /api/v1. No token or an unknown/revoked one
 * → 401; a valid token without the needed scope → 403; the token store unreachable or busy → 503;
 * an address over its auth-failure limit → 429 before any token lookup.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { addressKey, type AuthFailureLimiter } from '../auth/auth-failure-limiter.js';
import { TokenStoreBusyError } from '../auth/lookup-gate.js';
import { canIngest, isAdmin, readableAdvertisers, type Principal, type TokenVerifier } from '../auth/principal.js';
import {
  ApiError, bindPrincipal, forbidden, hasPrincipal, isClickHouseUnavailable, principalOf, unauthorized, unavailable,
} from '../http/index.js';
import type { ApiMetrics } from './api-metrics.js';

const failures = new WeakMap<Request, 'missing' | 'invalid'>();

/** The token of `Authorization: Bearer <token>`; undefined without the header, null when it is not a bearer token. */
export function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined || header === '') return undefined;
  const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return m === null ? null : m[1];
}

/**
 * Resolves the bearer token to a principal. An address over its failure limit gets 429 first,
 * without a lookup, unless its token was recently seen valid. A failed token is counted against
 * the address and noted; `requireAuthenticated` then sends the 401.
 */
export function authenticate(verifier: TokenVerifier, limiter: AuthFailureLimiter): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const address = addressKey(req.ip ?? req.socket.remoteAddress);
    const token = bearerToken(req.headers.authorization);
    const admission = limiter.admit(address, token ?? undefined, verifier);
    if (!('settle' in admission)) {
      return next(new ApiError(429, `too many requests without a valid token from this address (limit ${limiter.limitPerMin} per minute)`,
        undefined, { 'Retry-After': String(admission.retryAfterS) }));
    }
    if (token === undefined || token === null) {
      admission.settle(false);
      failures.set(req, token === undefined ? 'missing' : 'invalid');
      return next();
    }
    let principal: Principal | undefined;
    try {
      principal = await verifier.verify(token);
    } catch (err) {
      // Not the client's fault: no failure counted.
      admission.settle(true);
      if (err instanceof TokenStoreBusyError) return next(unavailable('too many token checks in flight; retry in a second', 1));
      return next(isClickHouseUnavailable(err) ? unavailable('cannot check the token now (token store unavailable); retry later') : err);
    }
    admission.settle(principal !== undefined);
    if (principal === undefined) failures.set(req, 'invalid');
    else bindPrincipal(req, principal);
    next();
  };
}

export function requireAuthenticated(metrics: ApiMetrics): RequestHandler {
  return (req, _res, next) => {
    if (hasPrincipal(req)) return next();
    const reason = failures.get(req) ?? 'missing';
    metrics.authFailures.inc({ reason });
    next(unauthorized(reason === 'missing'
      ? 'missing bearer token: send Authorization: Bearer <token> (tally tokens create)'
      : 'invalid, unknown or revoked token'));
  };
}

export const requireIngest: RequestHandler = (req, _res, next) => {
  next(canIngest(principalOf(req)) ? undefined : forbidden('this token may not ingest events (needs scope ingest, ingest:<advertiser id> or admin)'));
};

export const requireAdmin: RequestHandler = (req, _res, next) => {
  next(isAdmin(principalOf(req)) ? undefined : forbidden('this route needs an admin token'));
};

/** Admin or at least one advertiser scope. */
export const requireReader: RequestHandler = (req, _res, next) => {
  const p = principalOf(req);
  const readable = readableAdvertisers(p);
  next(readable === null || readable.length > 0 ? undefined : forbidden('this token may not read counts (needs scope advertiser:<id> or admin)'));
};
