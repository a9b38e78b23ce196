/**
 * Who a live-feed socket is and what it may watch: the token and requested view of a handshake,
 * the view a principal starts in, why a view is refused, and the room each view is. Pure.
 */
import type { Server, Socket } from 'socket.io';
import { canReadAdvertiser, isAdmin, readableAdvertisers, type Principal } from '../auth/principal.js';
import { ID_PATTERN } from '../contracts/ids.js';
import type { ClientToServerEvents, ServerToClientEvents } from '../contracts/live-protocol.js';

export const ADMIN_ROOM = 'admin';

export function advertiserRoom(advertiserId: string): string {
  return `advertiser:${advertiserId}`;
}

/**
 * A requested view for the log, whatever the client sent: String() of a client's object can throw
 * (`{"toString": "x"}` has no callable toString), which would turn a refusal into a failed join.
 */
export function describeRequested(v: unknown): string | null {
  if (v === null || typeof v === 'string') return v === null ? null : v.slice(0, 140);
  return `<${Array.isArray(v) ? 'array' : typeof v}>`;
}

export interface SocketData {
  token: string;
  principal: Principal;
  /** The current view: an advertiser id, or null for all (admin). */
  view: string | null;
  /** A requested initial view that was refused (sent as `denied` once connected). */
  pendingDenial?: string;
}

export type LiveServerIo = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type LiveSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** Why a principal may not see a view, or null if it may; pure. */
export function viewRefusal(p: Principal, view: string | null): string | null {
  if (view === null) return isAdmin(p) ? null : 'only an admin may view all advertisers';
  return canReadAdvertiser(p, view) ? null : `not allowed to read advertiser ${view}`;
}

/** The view a new connection starts in: the requested one if allowed, else admin → all, advertiser → its first; null if none. */
export function initialView(p: Principal, requested: unknown): { view: string | null; refusal: string | null } | undefined {
  let refusal: string | null = null;
  if (requested === null || (typeof requested === 'string' && ID_PATTERN.test(requested))) {
    refusal = viewRefusal(p, requested);
    if (refusal === null) return { view: requested, refusal: null };
  }
  if (isAdmin(p)) return { view: null, refusal };
  const readable = readableAdvertisers(p) ?? [];
  if (readable.length === 0) return undefined;
  return { view: readable[0], refusal };
}

export function tokenOf(socket: LiveSocket): string | undefined {
  const auth: unknown = socket.handshake.auth;
  if (typeof auth === 'object' && auth !== null) {
    const t = (auth as { token?: unknown }).token;
    if (typeof t === 'string' && t.length > 0) return t;
  }
  const header = socket.handshake.headers.authorization;
  if (typeof header === 'string' && /^Bearer\s+\S+$/i.test(header)) return header.replace(/^Bearer\s+/i, '');
  return undefined;
}

export function requestedView(socket: LiveSocket): unknown {
  const auth: unknown = socket.handshake.auth;
  if (typeof auth === 'object' && auth !== null && 'advertiserId' in auth) return (auth as { advertiserId?: unknown }).advertiserId;
  return undefined;
}
