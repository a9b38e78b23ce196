import { passwordFile, readStackPassword } from './stack-password.js';

/** How tally reaches ClickHouse (the `clickhouse` part of TallyConfig). */
export interface ClickHouseConnection {
  /** HTTP URL without userinfo: safe to print and log. */
  url: string;
  /** True when given by CLICKHOUSE_URL (tally starts no server). */
  external: boolean;
  user: string;
  password: string;
  /** The local stack's password file, when the password comes from it. */
  passwordFile?: string;
  database: string;
  httpPort: number;
  tcpPort: number;
}

export interface ClickHouseSettings {
  /** CLICKHOUSE_URL, if set. */
  url?: string;
  user: string;
  /** CLICKHOUSE_PASSWORD; empty when unset. */
  password: string;
  database: string;
  httpPort: number;
  tcpPort: number;
  stackDir: string;
}

/**
 * Where the credentials come from:
 * - user:password@ in CLICKHOUSE_URL: taken out of the URL into user and password (they win over
 *   CLICKHOUSE_USER / CLICKHOUSE_PASSWORD, as in @clickhouse/client), so the URL tally prints,
 *   logs and passes on never holds a secret;
 * - the local stack (CLICKHOUSE_URL unset) with CLICKHOUSE_PASSWORD unset or empty: the password
 *   `tally stack up` generated, read from <stackDir>/clickhouse-password when first asked for and
 *   then kept. The file may appear after the config is loaded (`tally start` and the test harness
 *   load it before bringing the stack up); until it exists the password is empty.
 */
export function clickhouseConnection(s: ClickHouseSettings): ClickHouseConnection {
  const common = { database: s.database, httpPort: s.httpPort, tcpPort: s.tcpPort };
  if (s.url !== undefined) {
    const { url, user, password } = splitUserinfo(s.url);
    return { ...common, url, external: true, user: user ?? s.user, password: password ?? s.password };
  }
  const url = `http://127.0.0.1:${s.httpPort}`;
  if (s.password !== '') return { ...common, url, external: false, user: s.user, password: s.password };
  let found: string | undefined;
  return {
    ...common,
    url,
    external: false,
    user: s.user,
    passwordFile: passwordFile(s.stackDir),
    get password(): string {
      found ??= readStackPassword(s.stackDir);
      return found ?? '';
    },
  };
}

/** The URL without its userinfo, and the (percent-decoded) user and password it held. */
export function splitUserinfo(raw: string): { url: string; user?: string; password?: string } {
  const parsed = new URL(raw);
  if (!raw.includes('@') || !raw.includes('//')) return { url: raw };
  // The authority ends at the first / ? # or \; its userinfo at its last @ (WHATWG URL parsing).
  const start = raw.indexOf('//') + 2;
  const rest = raw.slice(start);
  const end = rest.search(/[/?#\\]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const url = raw.slice(0, start) + authority.slice(authority.lastIndexOf('@') + 1) + (end < 0 ? '' : rest.slice(end));
  return {
    url,
    user: parsed.username === '' ? undefined : decode(parsed.username),
    password: parsed.password === '' ? undefined : decode(parsed.password),
  };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
