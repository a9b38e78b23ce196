import pino from 'pino';
import { prettyFactory } from 'pino-pretty';
import { LOG_REDACT_PATHS, redactLogObject, redactUrl } from './redact.js';

export type Logger = pino.Logger;

/** How log lines are written: one JSON object per line, or pino-pretty's lines for a person. */
export type LogFormat = 'json' | 'pretty';

/**
 * `LOG_FORMAT=json|pretty` decides; unset or `auto`: pretty when stderr is a terminal, JSON
 * otherwise (a file, a pipe, a test harness or a log collector always gets JSON).
 */
export function logFormat(env: NodeJS.ProcessEnv = process.env, stderrIsTTY = process.stderr.isTTY === true): LogFormat {
  if (env.LOG_FORMAT === 'json' || env.LOG_FORMAT === 'pretty') return env.LOG_FORMAT;
  return stderrIsTTY ? 'pretty' : 'json';
}

/** Colours for pretty lines: NO_COLOR turns them off, FORCE_COLOR on, else only on a terminal. */
export function logColors(env: NodeJS.ProcessEnv = process.env, stderrIsTTY = process.stderr.isTTY === true): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined) return !['0', 'false'].includes(env.FORCE_COLOR);
  return stderrIsTTY && env.TERM !== 'dumb';
}

/**
 * A destination printing each JSON line pino made as a pino-pretty line, synchronously: the line
 * is on `target` when the log call returns, so nothing is lost when a command exits right after
 * (no transport worker thread to flush). Only the rendering changes: pino has already censored
 * and redacted the line.
 */
export function prettyDestination(target: number | { write(text: string): unknown } = 2, colorize = logColors()): pino.DestinationStream {
  const prettify = prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,role', singleLine: true });
  // SonicBoom in sync mode, as pino.destination(2): it retries a write a full pipe refused (EAGAIN).
  const out = typeof target === 'number' ? pino.destination({ dest: target, sync: true }) : target;
  return { write: (line: string) => void out.write(prettify(line)) };
}

/** stderr in the format `logFormat()` picks. */
function stderrDestination(): pino.DestinationStream {
  return logFormat() === 'pretty' ? prettyDestination(2) : pino.destination(2);
}

/**
 * Logs on stderr (stdout stays free for command output): JSON lines, or human-readable lines on
 * a terminal (`logFormat`). Secrets are kept out in both: fields named password, authorization,
 * cookie, secret are censored, and the userinfo of URLs in the message and string fields is
 * redacted (`redactUrl`), before the line is rendered.
 */
export function createLogger(role: string, level = process.env.LOG_LEVEL ?? 'info', destination: pino.DestinationStream = stderrDestination()): Logger {
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
