/** Waiting on what can be observed: polls of a condition, with a deadline and a way to give up early. */

/** A plain delay: for pacing (a poll interval, a producer's tick), not for waiting on something. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface WaitOptions {
  timeoutMs: number;
  /** Between two probes. @default 500 */
  everyMs?: number;
  /** Asked before each probe: a reason to give up at once (a process died, …), or undefined to go on. */
  abortIf?: () => string | undefined;
}

/** Polls until `probe` holds (a probe that throws has not held yet); throws after timeoutMs, or as soon as abortIf names a reason. */
export async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, opts: WaitOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const reason = opts.abortIf?.();
    if (reason !== undefined) throw new Error(`gave up waiting for ${what}: ${reason}`);
    if (await Promise.resolve().then(probe).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`);
    await sleep(opts.everyMs ?? 500);
  }
}

/** Polls until `probe` returns true; throws with `what` after timeoutMs. */
export function eventually(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 500): Promise<void> {
  return waitUntil(what, probe, { timeoutMs, everyMs });
}
