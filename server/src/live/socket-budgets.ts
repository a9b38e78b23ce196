/**
 * What one client may ask of the live feed, so that no socket or token can stall the process:
 * CONNECT packets per transport connection, open sockets per token, snapshots (connects and
 * joins) per token, joins per socket. Every check is O(1) and synchronous, so a POST carrying
 * thousands of packets costs thousands of cheap refusals, then a closed connection. Pure apart
 * from the clock; unit-tested.
 */
import { setNewest } from '../auth/bounded-map.js';

/** Refills `capacity` tokens per `periodMs`, continuously; starts full. */
export class TokenBucket {
  private level: number;
  private at: number;

  constructor(private readonly capacity: number, private readonly periodMs: number, now: number) {
    this.level = capacity;
    this.at = now;
  }

  take(now: number): boolean {
    this.level = Math.min(this.capacity, this.level + ((now - this.at) * this.capacity) / this.periodMs);
    this.at = now;
    if (this.level < 1) return false;
    this.level -= 1;
    return true;
  }
}

export interface LiveLimits {
  socketsPerToken: number;
  handshakesPerConnection: number;
  joinsPer10s: number;
  snapshotsPerMinPerToken: number;
}

/** A join's fate: go ahead, refuse it, or refuse it and close the socket (it keeps flooding). */
export type JoinVerdict = 'ok' | 'refuse' | 'disconnect';

interface JoinBudget {
  bucket: TokenBucket;
  /** Joins refused in a row; as many again as the budget → disconnect. */
  refusedInARow: number;
}

/** Most tokens with a snapshot bucket kept (the least recently used are dropped first). */
const MAX_TOKENS_TRACKED = 10_000;

export class LiveBudgets {
  private readonly handshakes = new WeakMap<object, number>();
  private readonly joins = new WeakMap<object, JoinBudget>();
  private readonly snapshots = new Map<string, TokenBucket>();
  private readonly sockets = new Map<string, number>();

  constructor(readonly limits: LiveLimits, private readonly now: () => number = Date.now) {}

  /** Counts a CONNECT packet on a transport connection; false once it sent more than allowed. */
  handshake(connection: object): boolean {
    const n = (this.handshakes.get(connection) ?? 0) + 1;
    this.handshakes.set(connection, n);
    return n <= this.limits.handshakesPerConnection;
  }

  /** Takes one of the token's snapshots (a connect or a join); false when it used them all for now. */
  snapshot(tokenId: string): boolean {
    const bucket = this.snapshots.get(tokenId) ?? new TokenBucket(this.limits.snapshotsPerMinPerToken, 60_000, this.now());
    setNewest(this.snapshots, tokenId, bucket, MAX_TOKENS_TRACKED);
    return bucket.take(this.now());
  }

  /** Reserves an open socket for the token; false at its limit. Every true needs one releaseSocket. */
  reserveSocket(tokenId: string): boolean {
    const n = this.sockets.get(tokenId) ?? 0;
    if (n >= this.limits.socketsPerToken) return false;
    this.sockets.set(tokenId, n + 1);
    return true;
  }

  releaseSocket(tokenId: string): void {
    const n = (this.sockets.get(tokenId) ?? 0) - 1;
    if (n > 0) this.sockets.set(tokenId, n);
    else this.sockets.delete(tokenId);
  }

  socketsOf(tokenId: string): number {
    return this.sockets.get(tokenId) ?? 0;
  }

  /** A join on this socket: within its budget, over it, or over it for so long that it is flooding. */
  join(socket: object): JoinVerdict {
    let budget = this.joins.get(socket);
    if (budget === undefined) {
      budget = { bucket: new TokenBucket(this.limits.joinsPer10s, 10_000, this.now()), refusedInARow: 0 };
      this.joins.set(socket, budget);
    }
    if (budget.bucket.take(this.now())) {
      budget.refusedInARow = 0;
      return 'ok';
    }
    budget.refusedInARow++;
    return budget.refusedInARow >= this.limits.joinsPer10s ? 'disconnect' : 'refuse';
  }
}
