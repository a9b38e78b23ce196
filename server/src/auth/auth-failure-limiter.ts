/**
 * Requests and socket handshakes whose token failed, counted per client address (IPv6 grouped by
 * /56, as express-rate-limit does). Once an address is over its limit, REST and socket.io answer
 * it *before* any token lookup, so a flood of made-up tokens costs no ClickHouse query. A real
 * user behind the same address keeps working: a token this process has recently seen valid is
 * still checked, and so is one well-formed token per second (one lookup at most, so a user with a
 * fresh token gets in within seconds while the flood stays refused). Fixed one-minute windows;
 * pure apart from the clock.
 */
import { ipKeyGenerator } from 'express-rate-limit';
import { setNewest } from './bounded-map.js';
import type { TokenVerifier } from './principal.js';
import { parseToken } from './token-store.js';

const WINDOW_MS = 60_000;
/** A limited address may still have one well-formed, not yet known token looked up this often. */
const PROBE_EVERY_MS = 1_000;

interface FailureWindow {
  start: number;
  failures: number;
  lastProbeAt: number;
}

/** A token check may go ahead; `settle` says how it ended (every admitted check settles once). */
export interface Admission {
  retryAfterS: 0;
  settle(valid: boolean): void;
}

/** Refused before any lookup: answer 429 with Retry-After. */
export interface Refusal {
  retryAfterS: number;
}

/** The limiter's key for a client address. */
export function addressKey(address: string | undefined): string {
  return address === undefined || address === '' ? 'unknown' : ipKeyGenerator(address);
}

export class AuthFailureLimiter {
  private readonly windows = new Map<string, FailureWindow>();
  /** Checks admitted and not settled yet, per address: they count against the limit until they do. */
  private readonly pending = new Map<string, number>();

  constructor(
    readonly limitPerMin: number,
    private readonly now: () => number = Date.now,
    /** Most addresses remembered; the oldest windows are dropped first (bounds memory under spoofed floods). */
    private readonly maxAddresses = 100_000,
  ) {}

  /**
   * Whether this request may have its token checked (then it must `settle`), or how long to wait:
   * the answer is then 429 without any lookup. Checks in flight count as failures until settled,
   * so a burst of concurrent made-up tokens cannot slip past the limit while its lookups run.
   */
  admit(key: string, token: string | undefined, verifier: TokenVerifier): Admission | Refusal {
    const retryAfterS = this.retryAfterS(key);
    if (retryAfterS === 0) return this.admission(key, token === undefined || verifier.recentlyValid?.(token) !== true);
    if (token === undefined) return { retryAfterS };
    if (verifier.recentlyValid?.(token) === true) return this.admission(key, false);
    const w = this.windows.get(key);
    if (w !== undefined && parseToken(token) !== undefined && this.now() - w.lastProbeAt >= PROBE_EVERY_MS) {
      w.lastProbeAt = this.now();
      return this.admission(key, true);
    }
    return { retryAfterS };
  }

  /** Seconds until the address may try again; 0 when it is not limited. */
  retryAfterS(key: string): number {
    const pending = this.pending.get(key) ?? 0;
    const w = this.current(key);
    if ((w?.failures ?? 0) + pending < this.limitPerMin) return 0;
    return w === undefined ? 1 : Math.max(1, Math.ceil((w.start + WINDOW_MS - this.now()) / 1000));
  }

  private admission(key: string, counted: boolean): Admission {
    if (counted) this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    let settled = false;
    return {
      retryAfterS: 0,
      settle: (valid) => {
        if (settled) return;
        settled = true;
        if (counted) {
          const n = (this.pending.get(key) ?? 1) - 1;
          if (n > 0) this.pending.set(key, n);
          else this.pending.delete(key);
        }
        if (!valid) this.recordFailure(key);
      },
    };
  }

  recordFailure(key: string): void {
    const w = this.current(key);
    if (w !== undefined) {
      w.failures++;
      return;
    }
    setNewest(this.windows, key, { start: this.now(), failures: 1, lastProbeAt: 0 }, this.maxAddresses);
  }

  private current(key: string): FailureWindow | undefined {
    const w = this.windows.get(key);
    if (w === undefined) return undefined;
    if (this.now() - w.start >= WINDOW_MS) {
      this.windows.delete(key);
      return undefined;
    }
    return w;
  }
}
