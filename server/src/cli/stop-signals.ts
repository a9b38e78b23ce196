/**
 * How every long-running role stops: the first SIGTERM or SIGINT starts a clean stop (finish the
 * current transaction or batch, then exit); a second one forces exit 130. A second signal within
 * a second of the first is the same request, not impatience: under `tally start` the terminal's
 * Ctrl-C reaches every role as SIGINT and the supervisor then sends SIGTERM.
 */
import type { Logger } from '../observability/index.js';

const SAME_REQUEST_MS = 1_000;

export function stopOnSignals(log: Logger, event: string, stop: () => void): void {
  let firstAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now();
    if (firstAt === undefined) {
      firstAt = now;
      log.info({ signal }, event);
      stop();
      return;
    }
    if (now - firstAt < SAME_REQUEST_MS) return;
    log.info({ signal }, `${event}_forced`);
    process.exit(130);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
