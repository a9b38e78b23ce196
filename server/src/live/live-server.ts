/**
 * The socket.io side of the live feed: authenticated handshakes, one room per view
 * (`advertiser:<id>` or `admin` for all), snapshots on connect and join, throttled updates of the
 * changed rows per room, and revocation (every connected token re-verified about once a second).
 */
import type http from 'node:http';
import { Server, type Socket } from 'socket.io';
import { canReadAdvertiser, isAdmin, readableAdvertisers, type Principal, type TokenVerifier } from '../auth/principal.js';
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { ClientToServerEvents, LiveSnapshot, LiveUpdate, LiveWindowRow, ServerToClientEvents } from './live-protocol.js';
import type { LiveMetrics } from './live-metrics.js';
import type { LiveState } from './live-state.js';

/** Target interval between two update flushes; never less than MIN_FLUSH_GAP_MS apart, so ≤ 4 per second per client. */
export const FLUSH_INTERVAL_MS = 260;
export const MIN_FLUSH_GAP_MS = 255;
export const REVALIDATE_EVERY_MS = 1_000;
/** A view without changed rows hears of a moved watermark at most this often. */
export const WATERMARK_ONLY_EVERY_MS = 1_000;
const PRUNE_EVERY_MS = 60_000;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
export const ADMIN_ROOM = 'admin';
/** Each join sends a snapshot: at most this many joins per socket per JOIN_WINDOW_MS. */
const MAX_JOINS_PER_WINDOW = 20;
const JOIN_WINDOW_MS = 10_000;

type JoinAck = (r: { ok: true } | { ok: false; message: string }) => void;

export function advertiserRoom(advertiserId: string): string {
  return `advertiser:${advertiserId}`;
}

/**
 * A requested view for the log, whatever the client sent: String() of a client's object can throw
 * (`{"toString": "x"}` has no callable toString), which would turn a refusal into a failed join.
 */
function describeRequested(v: unknown): string | null {
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

type LiveServerIo = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type LiveSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** Why a principal may not see a view, or null if it may; pure. */
export function viewRefusal(p: Principal, view: string | null): string | null {
  if (view === null) return isAdmin(p) ? null : 'only an admin may view all advertisers';
  return canReadAdvertiser(p, view) ? null : `not allowed to read advertiser ${view}`;
}

/** The view a new connection starts in: the requested one if allowed, else admin → all, advertiser → its first; null if none. */
export function initialView(p: Principal, requested: unknown): { view: string | null; refusal: string | null } | undefined {
  let refusal: string | null = null;
  if (requested === null || (typeof requested === 'string' && ID.test(requested))) {
    refusal = viewRefusal(p, requested);
    if (refusal === null) return { view: requested, refusal: null };
  }
  if (isAdmin(p)) return { view: null, refusal };
  const readable = readableAdvertisers(p) ?? [];
  if (readable.length === 0) return undefined;
  return { view: readable[0], refusal };
}

function tokenOf(socket: LiveSocket): string | undefined {
  const auth: unknown = socket.handshake.auth;
  if (typeof auth === 'object' && auth !== null) {
    const t = (auth as { token?: unknown }).token;
    if (typeof t === 'string' && t.length > 0) return t;
  }
  const header = socket.handshake.headers.authorization;
  if (typeof header === 'string' && /^Bearer\s+\S+$/i.test(header)) return header.replace(/^Bearer\s+/i, '');
  return undefined;
}

function requestedView(socket: LiveSocket): unknown {
  const auth: unknown = socket.handshake.auth;
  if (typeof auth === 'object' && auth !== null && 'advertiserId' in auth) return (auth as { advertiserId?: unknown }).advertiserId;
  return undefined;
}

export class LiveServer {
  readonly io: LiveServerIo;
  private flushTimer: NodeJS.Timeout | undefined;
  private revalidateTimer: NodeJS.Timeout | undefined;
  private lastFlushAt = 0;
  /** The watermark moved since views without changed rows were last told. */
  private watermarkPending = false;
  private lastWatermarkOnlyAt = 0;
  private lastPruneAt = Date.now();
  private sweeping = false;
  private readonly joinChains = new WeakMap<LiveSocket, Promise<void>>();
  private readonly joinTimes = new WeakMap<LiveSocket, number[]>();
  private closed = false;

  constructor(
    httpServer: http.Server,
    private readonly config: TallyConfig,
    private readonly state: LiveState,
    private readonly verifier: TokenVerifier,
    private readonly log: Logger,
    private readonly metrics: LiveMetrics,
  ) {
    this.io = new Server(httpServer, { path: '/socket.io', serveClient: false });
    this.io.use((socket, next) => {
      this.authenticate(socket).then(next, (err: unknown) => {
        this.log.warn({ err: String(err) }, 'live.handshake_verify_failed');
        this.metrics.refused.inc({ reason: 'unavailable' });
        next(new Error('unavailable'));
      });
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
    this.scheduleFlush(FLUSH_INTERVAL_MS);
    this.revalidateTimer = setInterval(() => void this.revalidate(), REVALIDATE_EVERY_MS);
    this.revalidateTimer.unref();
  }

  /** Disconnects every client and stops the timers; the http server stays open (its owner closes it). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.revalidateTimer) clearInterval(this.revalidateTimer);
    this.io.disconnectSockets(true);
    this.io.engine.close();
  }

  private async authenticate(socket: LiveSocket): Promise<Error | undefined> {
    if (this.closed) return new Error('unavailable');
    const token = tokenOf(socket);
    const principal = token === undefined ? undefined : await this.verifier.verify(token);
    if (token === undefined || principal === undefined) {
      this.metrics.refused.inc({ reason: 'unauthorized' });
      return new Error('unauthorized');
    }
    const start = initialView(principal, requestedView(socket));
    if (start === undefined) {
      // A valid token without read access (e.g. ingest only).
      this.metrics.refused.inc({ reason: 'forbidden' });
      return new Error('forbidden');
    }
    socket.data = { token, principal, view: start.view };
    if (start.refusal !== null) socket.data.pendingDenial = start.refusal;
    return undefined;
  }

  private onConnection(socket: LiveSocket): void {
    this.metrics.connections.inc();
    this.metrics.connectedClients.inc();
    const pending = socket.data.pendingDenial;
    if (pending !== undefined) {
      delete socket.data.pendingDenial;
      this.metrics.denied.inc();
      socket.emit('denied', { message: pending });
    }
    this.enter(socket, socket.data.view);
    this.log.debug({ socket: socket.id, principal: socket.data.principal.name, view: socket.data.view }, 'live.connected');
    socket.on('join', (advertiserId: unknown, ack: unknown) => this.onJoin(socket, advertiserId, ack));
    socket.on('disconnect', (reason) => {
      this.metrics.connectedClients.dec();
      this.log.debug({ socket: socket.id, reason }, 'live.disconnected');
    });
  }

  /** Joins of one socket run one after the other, each against a freshly verified token. */
  private onJoin(socket: LiveSocket, advertiserId: unknown, ack: unknown): void {
    const prev = this.joinChains.get(socket) ?? Promise.resolve();
    const next = prev.then(() => this.join(socket, advertiserId, ack)).catch((err: unknown) => {
      this.log.warn({ err: String(err) }, 'live.join_failed');
      if (typeof ack === 'function') (ack as JoinAck)({ ok: false, message: 'unavailable' });
    });
    this.joinChains.set(socket, next);
  }

  private async join(socket: LiveSocket, advertiserId: unknown, ack: unknown): Promise<void> {
    const reply = (r: { ok: true } | { ok: false; message: string }) => {
      if (typeof ack === 'function') (ack as JoinAck)(r);
    };
    if (!socket.connected) return;
    const now = Date.now();
    const recent = (this.joinTimes.get(socket) ?? []).filter((t) => now - t < JOIN_WINDOW_MS);
    recent.push(now);
    this.joinTimes.set(socket, recent);
    let refusal: string | null;
    if (recent.length > MAX_JOINS_PER_WINDOW) refusal = 'too many joins; wait a few seconds';
    else if (advertiserId !== null && (typeof advertiserId !== 'string' || !ID.test(advertiserId))) refusal = 'advertiserId must be an advertiser id or null';
    else {
      const principal = await this.verifier.verify(socket.data.token);
      if (principal === undefined) {
        reply({ ok: false, message: 'token revoked' });
        this.revoke(socket, 'token revoked');
        return;
      }
      socket.data.principal = principal;
      refusal = viewRefusal(principal, advertiserId as string | null);
    }
    if (!socket.connected) return;
    if (refusal !== null) {
      this.metrics.denied.inc();
      this.log.info({ socket: socket.id, principal: socket.data.principal.name, requested: describeRequested(advertiserId) }, 'live.join_denied');
      reply({ ok: false, message: refusal });
      socket.emit('denied', { message: refusal });
      return;
    }
    reply({ ok: true });
    this.enter(socket, advertiserId as string | null);
  }

  /** Moves the socket to the view's room and sends the view's snapshot. */
  private enter(socket: LiveSocket, view: string | null): void {
    const room = view === null ? ADMIN_ROOM : advertiserRoom(view);
    for (const r of socket.rooms) if (r !== socket.id && r !== room) void socket.leave(r);
    void socket.join(room);
    socket.data.view = view;
    socket.emit('snapshot', this.snapshot(view));
    this.metrics.snapshotsSent.inc();
  }

  snapshot(view: string | null): LiveSnapshot {
    return {
      advertiserId: view,
      windowMs: this.config.windowMs,
      allowedLatenessMs: this.config.allowedLatenessMs,
      rows: this.state.snapshotRows(view),
      watermark: this.state.publishedWatermark,
      serverTime: Date.now(),
      rangeStart: this.state.rangeStart,
    };
  }

  private scheduleFlush(delay: number): void {
    if (this.closed) return;
    this.flushTimer = setTimeout(() => this.onFlushTimer(), delay);
    this.flushTimer.unref();
  }

  private onFlushTimer(): void {
    // Timers may fire a little early: never flush twice within MIN_FLUSH_GAP_MS.
    const sinceLast = Date.now() - this.lastFlushAt;
    if (sinceLast < MIN_FLUSH_GAP_MS) {
      this.scheduleFlush(MIN_FLUSH_GAP_MS - sinceLast + 1);
      return;
    }
    try {
      this.flush();
    } catch (err) {
      this.log.error({ err: String(err) }, 'live.flush_failed');
    }
    this.scheduleFlush(FLUSH_INTERVAL_MS);
  }

  /**
   * One update per room with members: its advertiser's changed rows (admin: all); a room without
   * changed rows gets an update without rows when the watermark moved (at most once a second).
   */
  private flush(): void {
    const now = Date.now();
    this.lastFlushAt = now;
    if (now - this.lastPruneAt >= PRUNE_EVERY_MS) {
      this.lastPruneAt = now;
      const dropped = this.state.prune(now);
      if (dropped > 0) this.log.info({ rows: dropped, rangeStart: this.state.rangeStart }, 'live.pruned');
      this.metrics.rowsHeld.set(this.state.stats.rows);
    }
    const changes = this.state.drainChanges();
    if (changes.watermarkChanged) this.watermarkPending = true;
    const watermarkOnly = this.watermarkPending && now - this.lastWatermarkOnlyAt >= WATERMARK_ONLY_EVERY_MS;
    if (watermarkOnly) {
      this.watermarkPending = false;
      this.lastWatermarkOnlyAt = now;
    }
    const rooms = this.io.of('/').adapter.rooms;
    for (const [room, members] of rooms) {
      if (members.size === 0) continue;
      let view: string | null;
      if (room === ADMIN_ROOM) view = null;
      else if (room.startsWith('advertiser:')) view = room.slice('advertiser:'.length);
      else continue;
      let rows: LiveWindowRow[];
      if (view === null) {
        rows = [];
        for (const r of changes.byAdvertiser.values()) rows.push(...r);
      } else {
        rows = changes.byAdvertiser.get(view) ?? [];
      }
      if (rows.length === 0 && !watermarkOnly) continue;
      const update: LiveUpdate = { advertiserId: view, rows, watermark: changes.watermark, serverTime: now };
      this.io.to(room).emit('update', update);
      this.metrics.updatesSent.inc(members.size);
      this.metrics.updateRowsSent.inc(members.size * rows.length);
    }
  }

  /** `denied`, then a namespace disconnect ("io server disconnect": the client does not reconnect by itself). */
  private revoke(socket: LiveSocket, message: string): void {
    if (!socket.connected) return;
    this.metrics.revoked.inc();
    this.log.info({ socket: socket.id, principal: socket.data.principal.name, reason: message }, 'live.revoked_disconnect');
    socket.emit('denied', { message });
    socket.disconnect();
  }

  /** Re-verifies every connected token (each distinct token once); revoked or no longer allowed → denied, then disconnected. */
  private async revalidate(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      const byToken = new Map<string, LiveSocket[]>();
      for (const socket of this.io.of('/').sockets.values()) {
        const list = byToken.get(socket.data.token);
        if (list) list.push(socket);
        else byToken.set(socket.data.token, [socket]);
      }
      await Promise.all([...byToken].map(async ([token, sockets]) => {
        let principal: Principal | undefined;
        try {
          principal = await this.verifier.verify(token);
        } catch (err) {
          // The token store is unavailable: keep the connections, try again next sweep.
          this.log.warn({ err: String(err) }, 'live.revalidate_failed');
          return;
        }
        for (const socket of sockets) {
          if (!socket.connected) continue;
          const refusal = principal === undefined ? 'token revoked' : viewRefusal(principal, socket.data.view);
          if (refusal === null && principal !== undefined) {
            socket.data.principal = principal;
            continue;
          }
          this.revoke(socket, refusal ?? 'token revoked');
        }
      }));
    } finally {
      this.sweeping = false;
    }
  }
}
