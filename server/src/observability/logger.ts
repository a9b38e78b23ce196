import pino from 'pino';
import { LOG_REDACT_PATHS, redactLogObject, redactUrl } from './redact.js';

export type Logger = pino.Logger;

/**
 * Structured JSON logs on stderr (stdout stays free for command output). Secrets are kept out:
 * fields named password, authorization, cookie, secret are censored, and the userinfo of URLs in
 * the message and top-level string fields is redacted (`redactUrl`).
 */
export function createLogger(role: string, level = process.env.LOG_LEVEL ?? 'info', destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino({
    level,
    base: { role, pid: process.pid },
    redact: { paths: LOG_REDACT_PATHS, censor: '***' },
    formatters: { log: redactLogObject },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? redactUrl(a) : a)) as Parameters<pino.LogFn>);
      },
    },
  }, destination);
}
