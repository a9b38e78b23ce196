/**
 * The one retrier: calls `attempt` until it resolves, the error is not worth another try
 * (`bail` says so), the attempts run out, or the deadline passes; then the last error is thrown.
 * Delays grow from `delayMs` by `factor` up to `maxDelayMs`.
 */
export interface RetryOptions {
  /** What is being tried, for the log line of each retry. */
  what: string;
  /** Most attempts in all (default: unbounded, so a deadline or bail must end it). */
  attempts?: number;
  /** Give up once this epoch-ms time has passed (default: none). */
  deadline?: number;
  delayMs?: number;
  /** Growth of the delay after each failure (default 1: a fixed delay). */
  factor?: number;
  maxDelayMs?: number;
  /** True: this error will not go away by trying again; throw it now. */
  bail?: (err: unknown) => boolean;
  /** Told about every failure that is retried (for a warning log). */
  onRetry?: (err: unknown, attempt: number) => void;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function retry<T>(attempt: (n: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  let delay = opts.delayMs ?? 1_000;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const outOfAttempts = opts.attempts !== undefined && n >= opts.attempts;
      const pastDeadline = opts.deadline !== undefined && Date.now() + delay > opts.deadline;
      if (outOfAttempts || pastDeadline || opts.bail?.(err) === true) throw err;
      opts.onRetry?.(err, n);
      await sleep(delay);
      delay = Math.min(opts.maxDelayMs ?? Number.POSITIVE_INFINITY, delay * (opts.factor ?? 1));
    }
  }
}
