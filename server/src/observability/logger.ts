import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stderr (stdout stays free for command output). */
export function createLogger(role: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { role, pid: process.pid } }, pino.destination(2));
}
