/**
 * When the sink loop tries again and how it reports an outage, pure (the caller passes the clock).
 * How often it speaks again is observability's Throttle.
 */

/** Exponential backoff: `firstMs`, doubling up to `maxMs`. */
export class Backoff {
  private nextMs: number;

  constructor(firstMs: number, private readonly maxMs: number) {
    this.nextMs = firstMs;
  }

  /** The delay before the next attempt; each call doubles the one after it. */
  next(): number {
    const ms = this.nextMs;
    this.nextMs = Math.min(this.maxMs, ms * 2);
    return ms;
  }
}

/**
 * One ClickHouse outage as the sink reports it: a warning when it starts, one line when it ends,
 * however many attempts failed in between.
 */
export class Outage {
  private since: number | undefined;
  private attempts = 0;

  /** A failed attempt at `now`; returns its number within the outage (1: the outage starts). */
  failed(now: number): number {
    this.since ??= now;
    return ++this.attempts;
  }

  /** An attempt succeeded at `now`: the outage it ends, if there was one. */
  recovered(now: number): { downMs: number; failedAttempts: number } | undefined {
    if (this.since === undefined) return undefined;
    const ended = { downMs: now - this.since, failedAttempts: this.attempts };
    this.since = undefined;
    this.attempts = 0;
    return ended;
  }
}
