import fs from 'node:fs';
import path from 'node:path';
import { CLICKHOUSE_REPLICA_PORT_STEP, passwordFile, readStackPassword, type TallyConfig } from '../config/index.js';
import { StackError } from '../errors/index.js';
import { ensureStackPassword, sha256Hex } from './clickhouse-password.js';
import { ensureDebianPackage, runningPid, startDetached, stopProcess, tail, waitFor } from './processes.js';

/**
 * Debian's clickhouse-server (18.16) with a config generated under the stack directory: loopback
 * only, one user (`default`) whose password is generated on the first start and kept in
 * <stackDir>/clickhouse-password (users.xml holds its SHA-256), queries logged to system.query_log.
 * With TALLY_CLICKHOUSE_REPLICAS=2, server i lives in <stackDir>/clickhouse/replica-<i+1> with the
 * stack's ZooKeeper, its {replica} macro and an interserver port the other fetches parts from.
 */
export class LocalClickHouse {
  readonly dir: string;
  readonly logFile: string;
  readonly pidFile: string;
  /** Replica number, 1-based (1 on a single-server stack). */
  readonly replica: number;
  readonly url: string;
  private readonly httpPort: number;
  private readonly tcpPort: number;

  constructor(private readonly config: TallyConfig, index = 0) {
    const root = path.join(config.stackDir, 'clickhouse');
    this.dir = config.clickhouse.replicas === 1 ? root : path.join(root, `replica-${index + 1}`);
    this.logFile = path.join(this.dir, 'log', 'server.log');
    this.pidFile = path.join(this.dir, 'clickhouse.pid');
    this.replica = index + 1;
    this.httpPort = config.clickhouse.httpPort + CLICKHOUSE_REPLICA_PORT_STEP * index;
    this.tcpPort = config.clickhouse.tcpPort + CLICKHOUSE_REPLICA_PORT_STEP * index;
    this.url = `http://127.0.0.1:${this.httpPort}`;
  }

  get pid(): number | undefined {
    return runningPid(this.pidFile);
  }

  async start(log: (msg: string) => void): Promise<void> {
    const { stackDir } = this.config;
    if (this.pid === undefined) {
      ensureDebianPackage('clickhouse-server', 'clickhouse-server', log);
      const { password, created } = ensureStackPassword(stackDir);
      if (created) log(`clickhouse: generated the password of user default in ${passwordFile(stackDir)} (mode 0600)`);
      this.checkPassword(password);
      for (const d of ['data', 'tmp', 'user_files', 'format_schemas', 'log']) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
      const configFile = this.writeConfig(password);
      startDetached('clickhouse-server', [`--config-file=${configFile}`], {
        cwd: this.dir, logFile: path.join(this.dir, 'log', 'stdout.log'), pidFile: this.pidFile,
      });
    } else {
      const password = readStackPassword(stackDir);
      if (password !== undefined) this.checkPassword(password);
      else log('clickhouse: the running server was started without a password (by an older tally) and is open to every local user; `tally stack down && tally stack up` makes it require one');
    }
    await waitFor(`ClickHouse ${this.url}`, async () => {
      if (this.pid === undefined) {
        throw new StackError(`clickhouse-server exited at start; last log lines:\n${tail(path.join(this.dir, 'log', 'error.log'), 20)}`);
      }
      return this.ping();
    }, 60_000, `see ${this.logFile}`);
  }

  /** True when the server answers a query with the configured credentials (/ping needs none). */
  async ping(): Promise<boolean> {
    const { user, password } = this.config.clickhouse;
    const res = await fetch(`${this.url}/?query=SELECT%201`, {
      headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
      signal: AbortSignal.timeout(1000),
    });
    await res.arrayBuffer();
    return res.ok;
  }

  /** The password this process sends must be the stack's: CLICKHOUSE_PASSWORD set to another one is refused here, not by a 401 later. */
  private checkPassword(stackPassword: string): void {
    if (this.config.clickhouse.password !== stackPassword) {
      throw new StackError(`CLICKHOUSE_PASSWORD is set, but the local stack's ClickHouse uses the password in ${passwordFile(this.config.stackDir)}: unset CLICKHOUSE_PASSWORD (or set CLICKHOUSE_URL to use another server)`);
    }
  }

  async stop(): Promise<boolean> {
    return stopProcess(this.pidFile, 30_000);
  }

  private writeConfig(password: string): string {
    const { httpPort, tcpPort } = this;
    const d = this.dir;
    const configFile = path.join(d, 'config.xml');
    fs.writeFileSync(configFile, `<?xml version="1.0"?>
<!-- Written by \`tally stack up\`; edits are overwritten. Loopback only. -->
<yandex>
  <logger><level>warning</level><log>${d}/log/server.log</log><errorlog>${d}/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <path>${d}/data/</path>
  <tmp_path>${d}/tmp/</tmp_path>
  <user_files_path>${d}/user_files/</user_files_path>
  <format_schema_path>${d}/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <users_config>${d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>
${this.replicationConfig()}</yandex>
`);
    // Config, not data: rewritten on every start, so a data directory from before passwords works as it is.
    const usersFile = path.join(d, 'users.xml');
    fs.writeFileSync(usersFile, `<?xml version="1.0"?>
<!-- Written by \`tally stack up\`; edits are overwritten. The password is in ../clickhouse-password. -->
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><log_queries>1</log_queries></default></profiles>
  <users><default><password_sha256_hex>${sha256Hex(password)}</password_sha256_hex><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`, { mode: 0o600 });
    fs.chmodSync(usersFile, 0o600);
    return configFile;
  }

  /** With replicas: the ZooKeeper, this server's replica name, and where the other fetches parts (a short session, so a killed replica is seen gone soon). */
  private replicationConfig(): string {
    const { replicas, zookeeperPort } = this.config.clickhouse;
    if (replicas === 1) return '';
    return `  <zookeeper><node><host>127.0.0.1</host><port>${zookeeperPort}</port></node><session_timeout_ms>10000</session_timeout_ms></zookeeper>
  <macros><replica>replica-${this.replica}</replica></macros>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <interserver_http_port>${this.tcpPort + 9}</interserver_http_port>
`;
  }
}
