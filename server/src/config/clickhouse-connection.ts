import { passwordFile, readStackPassword } from './stack-password.js';

/** Local stack ClickHouse replica i listens on TALLY_CLICKHOUSE_HTTP_PORT and TALLY_CLICKHOUSE_TCP_PORT plus this times i. */
export const CLICKHOUSE_REPLICA_PORT_STEP = 100;

/** How tally reaches ClickHouse (the `clickhouse` part of TallyConfig). */
export interface ClickHouseConnection {
  /** The first of `urls`: what a message names as "ClickHouse". Safe to print and log. */
  url: string;
  /** Every server tally may send a request to, in order of preference; without userinfo. */
  urls: string[];
  /** True when given by CLICKHOUSE_URL (tally starts no server). */
  external: boolean;
  user: string;
  password: string;
  /** The local stack's password file, when the password comes from it. */
  passwordFile?: string;
  database: string;
  httpPort: number;
  tcpPort: number;
  /** Local stack servers (1, or 2 replicas with a ZooKeeper). */
  replicas: number;
  zookeeperPort: number;
  /** Set: tables are Replicated*MergeTree under /clickhouse/tables/<cluster>/ in ZooKeeper. */
  cluster?: string;
  /** insert_quorum sent with every request; 0 with no cluster. */
  insertQuorum: number;
}

export interface ClickHouseSettings {
  /** CLICKHOUSE_URL, if set: one URL or several separated by commas. */
  url?: string;
  user: string;
  /** CLICKHOUSE_PASSWORD; empty when unset. */
  password: string;
  database: string;
  httpPort: number;
  tcpPort: number;
  replicas: number;
  zookeeperPort: number;
  cluster?: string;
  insertQuorum?: number;
  stackDir: string;
}

/**
 * Where the credentials come from:
 * - user:password@ in CLICKHOUSE_URL: taken out of the URL into user and password (they win over
 *   CLICKHOUSE_USER / CLICKHOUSE_PASSWORD, as in @clickhouse/client), so the URL tally prints,
 *   logs and passes on never holds a secret; with several URLs, the first one holding them;
 * - the local stack (CLICKHOUSE_URL unset) with CLICKHOUSE_PASSWORD unset or empty: the password
 *   `tally stack up` generated, read from <stackDir>/clickhouse-password when first asked for and
 *   then kept. The file may appear after the config is loaded (`tally start` and the test harness
 *   load it before bringing the stack up); until it exists the password is empty.
 * The local stack with two replicas is a cluster named `tally` unless TALLY_CLICKHOUSE_CLUSTER says otherwise.
 */
export function clickhouseConnection(s: ClickHouseSettings): ClickHouseConnection {
  const replication = (urls: string[], cluster: string | undefined) => ({
    urls,
    url: urls[0],
    cluster,
    insertQuorum: cluster === undefined ? 0 : (s.insertQuorum ?? urls.length),
  });
  const common = { database: s.database, httpPort: s.httpPort, tcpPort: s.tcpPort, replicas: s.replicas, zookeeperPort: s.zookeeperPort };
  if (s.url !== undefined) {
    const parts = s.url.split(',').map((u) => splitUserinfo(u.trim()));
    const creds = parts.find((p) => p.user !== undefined || p.password !== undefined);
    return {
      ...common, ...replication(parts.map((p) => p.url), s.cluster),
      external: true, user: creds?.user ?? s.user, password: creds?.password ?? s.password,
    };
  }
  const urls = Array.from({ length: s.replicas }, (_, i) => `http://127.0.0.1:${s.httpPort + CLICKHOUSE_REPLICA_PORT_STEP * i}`);
  const local = { ...common, ...replication(urls, s.cluster ?? (s.replicas > 1 ? 'tally' : undefined)), external: false };
  if (s.password !== '') return { ...local, user: s.user, password: s.password };
  let found: string | undefined;
  return {
    ...local,
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
