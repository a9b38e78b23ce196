/** Passes at most once per `everyMs`: for log lines and gauges that would otherwise repeat on every poll. */
export class Throttle {
  private lastAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly everyMs: number) {}

  /** True (and counted as the last pass) if `everyMs` has passed since the last pass. */
  ready(now: number): boolean {
    if (now - this.lastAt < this.everyMs) return false;
    this.lastAt = now;
    return true;
  }

  /** Counts `now` as a pass made outside `ready` (a forced update). */
  mark(now: number): void {
    this.lastAt = now;
  }
}
