/**
 * Bearer-token authentication and scope checks for /api/v1. No token or an unknown/revoked one
 * → 401; a valid token without the needed scope → 403; the token store unreachable → 503.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { canIngest, isAdmin, readableAdvertisers, type Principal, type TokenVerifier } from '../auth/principal.js';
import type { ApiMetrics } from './api-metrics.js';
import { forbidden, isClickHouseUnavailable, unauthorized, unavailable } from './http-errors.js';

const principals = new WeakMap<Request, Principal>();
const failures = new WeakMap<Request, 'missing' | 'invalid'>();

/** The authenticated caller; only valid after `authenticate` + `requireAuthenticated`. */
export function principalOf(req: Request): Principal {
  const p = principals.get(req);
  if (p === undefined) throw new Error('principalOf called on an unauthenticated request');
  return p;
}

export function hasPrincipal(req: Request): boolean {
  return principals.has(req);
}

/** The token of `Authorization: Bearer <token>`; undefined without the header, null when it is not a bearer token. */
export function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined || header === '') return undefined;
  const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return m === null ? null : m[1];
}

/**
 * Resolves the bearer token to a principal. Never answers by itself on failure: it notes why and
 * lets the auth-failure rate limiter see the request; `requireAuthenticated` then sends the 401.
 */
export function authenticate(verifier: TokenVerifier): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const token = bearerToken(req.headers.authorization);
    if (token === undefined || token === null) {
      failures.set(req, token === undefined ? 'missing' : 'invalid');
      return next();
    }
    let principal: Principal | undefined;
    try {
      principal = await verifier.verify(token);
    } catch (err) {
      return next(isClickHouseUnavailable(err) ? unavailable('cannot check the token now (token store unavailable); retry later') : err);
    }
    if (principal === undefined) failures.set(req, 'invalid');
    else principals.set(req, principal);
    next();
  };
}

export function requireAuthenticated(metrics: ApiMetrics): RequestHandler {
  return (req, _res, next) => {
    if (principals.has(req)) return next();
    const reason = failures.get(req) ?? 'missing';
    metrics.authFailures.inc({ reason });
    next(unauthorized(reason === 'missing'
      ? 'missing bearer token: send Authorization: Bearer <token> (tally tokens create)'
      : 'invalid, unknown or revoked token'));
  };
}

export const requireIngest: RequestHandler = (req, _res, next) => {
  next(canIngest(principalOf(req)) ? undefined : forbidden('this token may not ingest events (needs scope ingest or admin)'));
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
