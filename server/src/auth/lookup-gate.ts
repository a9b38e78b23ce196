/**
 * Bounds the token lookups a process sends to ClickHouse at once. A flood of made-up tokens must
 * not fill the API's one ClickHouse pool and starve real users' checks: at most `maxInFlight` run,
 * up to `maxWaiting` wait their turn, and anything beyond is refused at once (503), not queued.
 */
import { TallyError } from '../errors/index.js';

/** The lookup was refused without asking ClickHouse: too many were already waiting. */
export class TokenStoreBusyError extends TallyError {
  constructor(maxWaiting: number) {
    super(`token store busy: ${maxWaiting} token checks already waiting`, { retriable: true });
  }
}

export class LookupGate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly maxInFlight: number, readonly maxWaiting: number) {}

  get inFlight(): number {
    return this.active;
  }

  async run<T>(lookup: () => Promise<T>): Promise<T> {
    if (this.active < this.maxInFlight) {
      this.active++;
    } else {
      if (this.waiting.length >= this.maxWaiting) throw new TokenStoreBusyError(this.maxWaiting);
      // The finishing lookup hands its slot over directly: `active` stays the same.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await lookup();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.active--;
    }
  }
}
