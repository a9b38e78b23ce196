/**
 * Where the local stack ClickHouse's password file is, and how every tally process reads it
 * (clickhouse-connection.ts, when CLICKHOUSE_PASSWORD is unset). The stack writes the file on the
 * first `tally stack up` (stack/clickhouse-password.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors/index.js';

export const PASSWORD_FILE_NAME = 'clickhouse-password';

export function passwordFile(stackDir: string): string {
  return path.join(stackDir, PASSWORD_FILE_NAME);
}

/**
 * The password in the stack's file, or undefined when there is none yet (the stack has never been
 * started with one). An unreadable or empty file is a ConfigError naming it.
 */
export function readStackPassword(stackDir: string): string | undefined {
  const file = passwordFile(stackDir);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read the local stack's ClickHouse password ${file}: ${(err as Error).message}`, { cause: err });
  }
  const password = text.trim();
  if (password === '') throw new ConfigError(`${file} is empty: delete it, then \`tally stack down && tally stack up\` generates a new one`);
  return password;
}
