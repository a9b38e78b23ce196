/**
 * The socket.io side of the live feed: authenticated handshakes, one room per view
 * (`advertiser:<id>` or `admin` for all), snapshots on connect and join, throttled updates of the
 * changed rows per room, and revocation (every connected token re-verified about once a second;
 * when the token store cannot answer, sockets fail closed like REST). Every client works within
 * budgets (socket-budgets.ts) checked before any token lookup or snapshot.
 */
import type http from 'node:http';
import { Server } from 'socket.io';
import { addressKey, type Admission, type AuthFailureLimiter } from '../auth/auth-failure-limiter.js';
import type { Principal, TokenVerifier } from '../auth/principal.js';
import type { TallyConfig } from '../config/index.js';
import { ID_PATTERN } from '../contracts/ids.js';
import type { Logger } from '../observability/index.js';
import type { LiveSnapshot, LiveUpdate, LiveWindowRow } from '../contracts/live-protocol.js';
import type { LiveMetrics } from './live-metrics.js';
import type { LiveState } from './live-state.js';
import {
  ADMIN_ROOM, advertiserRoom, describeRequested, initialView, requestedView, tokenOf, viewRefusal, type LiveServerIo, type LiveSocket,
} from './live-views.js';
import { LiveBudgets } from './socket-budgets.js';

/** Target interval between two update flushes; never less than MIN_FLUSH_GAP_MS apart, so ≤ 4 per second per client. */
export const FLUSH_INTERVAL_MS = 260;
export const MIN_FLUSH_GAP_MS = 255;
export const REVALIDATE_EVERY_MS = 1_000;
/** A view without changed rows hears of a moved watermark at most this often. */
export const WATERMARK_ONLY_EVERY_MS = 1_000;
const PRUNE_EVERY_MS = 60_000;
/** A socket whose token could not be re-verified for this long is closed (REST refuses after the 1 s cache). */
export const FAIL_CLOSED_AFTER_MS = 2_000;
const FLOOD_LOG_EVERY_MS = 10_000;
type JoinAck = (r: { ok: true } | { ok: false; message: string }) => void;

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
  /** When each socket's token was last verified valid. */
  private readonly verifiedAt = new WeakMap<LiveSocket, number>();
  private readonly budgets: LiveBudgets;
  private readonly floodLogged = new Map<string, { at: number; suppressed: number }>();
  private closed = false;

  constructor(
    httpServer: http.Server,
    private readonly config: TallyConfig,
    private readonly state: LiveState,
    private readonly verifier: TokenVerifier,
    private readonly authFailures: AuthFailureLimiter,
    private readonly log: Logger,
    private readonly metrics: LiveMetrics,
  ) {
    this.budgets = new LiveBudgets(config.live);
    // A client's own messages are a few hundred bytes; this also caps the packets of one polling POST.
    this.io = new Server(httpServer, { path: '/socket.io', serveClient: false, maxHttpBufferSize: config.live.maxMessageBytes });
    this.io.use((socket, next) => {
      const refusal = this.precheck(socket);
      if (refusal !== null) {
        this.metrics.refused.inc({ reason: refusal });
        next(new Error(refusal));
        return;
      }
      const admission = this.authFailures.admit(addressKey(socket.handshake.address), tokenOf(socket), this.verifier);
      if (!('settle' in admission)) {
        this.metrics.refused.inc({ reason: 'rate_limited' });
        next(new Error('rate_limited'));
        return;
      }
      this.authenticate(socket, admission).then(next, (err: unknown) => {
        admission.settle(true);
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

  /**
   * Synchronous checks before any token lookup: CONNECT packets on this transport connection (a
   * flood closes the connection) and the address's auth-failure limit shared with REST.
   */
  private precheck(socket: LiveSocket): string | null {
    if (this.closed) return 'unavailable';
    if (!this.budgets.handshake(socket.conn)) {
      if (socket.conn.readyState === 'open') {
        this.metrics.floodDisconnects.inc({ reason: 'handshakes' });
        this.warnFlood('live.handshake_flood_closed', { address: socket.handshake.address });
        socket.conn.close();
      }
      return 'too_many_handshakes';
    }
    return null;
  }

  /** A flood is logged at most once per FLOOD_LOG_EVERY_MS (with how many more there were), so the log is no flood target itself. */
  private warnFlood(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.floodLogged.get(msg);
    if (last !== undefined && now - last.at < FLOOD_LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    this.log.warn({ ...fields, alsoSinceLastLine: last?.suppressed ?? 0 }, msg);
    this.floodLogged.set(msg, { at: now, suppressed: 0 });
  }

  private async authenticate(socket: LiveSocket, admission: Admission): Promise<Error | undefined> {
    const token = tokenOf(socket);
    const principal = token === undefined ? undefined : await this.verifier.verify(token);
    admission.settle(principal !== undefined);
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
    if (!this.budgets.snapshot(principal.tokenId)) {
      this.metrics.refused.inc({ reason: 'rate_limited' });
      return new Error('rate_limited');
    }
    if (!this.budgets.reserveSocket(principal.tokenId)) {
      this.metrics.refused.inc({ reason: 'too_many_connections' });
      return new Error('too_many_connections');
    }
    // Released once, whether the socket disconnects or its transport closes before it connected.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.budgets.releaseSocket(principal.tokenId);
    };
    socket.conn.once('close', release);
    socket.once('disconnect', release);
    socket.data = { token, principal, view: start.view };
    this.verifiedAt.set(socket, Date.now());
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

  /**
   * Joins of one socket run one after the other, each against a freshly verified token. Budgets
   * first, synchronously: a socket over its join budget is refused at once, and one that keeps
   * going (a POST of thousands of joins) is disconnected; its remaining packets find it closed.
   */
  private onJoin(socket: LiveSocket, advertiserId: unknown, ack: unknown): void {
    if (!socket.connected) return;
    const refuse = (message: string) => {
      this.metrics.denied.inc();
      if (typeof ack === 'function') (ack as JoinAck)({ ok: false, message });
    };
    const verdict = this.budgets.join(socket);
    if (verdict === 'disconnect') {
      this.metrics.floodDisconnects.inc({ reason: 'joins' });
      this.warnFlood('live.join_flood_disconnected', { address: socket.handshake.address, principal: socket.data.principal.name });
      socket.disconnect(true);
      return;
    }
    if (verdict === 'refuse') return refuse('too many joins; wait a few seconds');
    if (!this.budgets.snapshot(socket.data.principal.tokenId)) return refuse('too many snapshots for this token; wait a minute');
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
    let refusal: string | null;
    if (advertiserId !== null && (typeof advertiserId !== 'string' || !ID_PATTERN.test(advertiserId))) refusal = 'advertiserId must be an advertiser id or null';
    else {
      const principal = await this.verifier.verify(socket.data.token);
      if (principal === undefined) {
        reply({ ok: false, message: 'token revoked' });
        this.revoke(socket, 'token revoked');
        return;
      }
      socket.data.principal = principal;
      this.verifiedAt.set(socket, Date.now());
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
          // The token store cannot answer: fail closed, as REST does, once the last good check
          // is older than FAIL_CLOSED_AFTER_MS (one failed sweep is tolerated).
          this.log.warn({ err: String(err) }, 'live.revalidate_failed');
          const now = Date.now();
          for (const socket of sockets) {
            if (now - (this.verifiedAt.get(socket) ?? 0) > FAIL_CLOSED_AFTER_MS) {
              this.revoke(socket, 'cannot check the token now (token store unavailable); reconnect later');
            }
          }
          return;
        }
        for (const socket of sockets) {
          if (!socket.connected) continue;
          const refusal = principal === undefined ? 'token revoked' : viewRefusal(principal, socket.data.view);
          if (refusal === null && principal !== undefined) {
            socket.data.principal = principal;
            this.verifiedAt.set(socket, Date.now());
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
