/**
 * The authenticated caller of a request. api/'s `authenticate` binds it; every route behind
 * `requireAuthenticated` (api/, and the routes it mounts: ingest/, billing/) reads it.
 */
import type { Request } from 'express';
import type { Principal } from '../auth/principal.js';

const principals = new WeakMap<Request, Principal>();

/** Records who made the request (the auth middleware, once the token is verified). */
export function bindPrincipal(req: Request, principal: Principal): void {
  principals.set(req, principal);
}

/** True once a principal is bound to the request. */
export function hasPrincipal(req: Request): boolean {
  return principals.has(req);
}

/** The authenticated caller; only valid after `authenticate` + `requireAuthenticated`. */
export function principalOf(req: Request): Principal {
  const p = principals.get(req);
  if (p === undefined) throw new Error('principalOf called on an unauthenticated request');
  return p;
}
