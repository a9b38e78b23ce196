import fs from 'node:fs';
import path from 'node:path';
import { passwordFile, readStackPassword, type TallyConfig } from '../config/index.js';
import { StackError } from '../errors/index.js';
import { ensureStackPassword, sha256Hex } from './clickhouse-password.js';
import { ensureDebianPackage, runningPid, startDetached, stopProcess, tail, waitFor } from './processes.js';

/**
 * Debian's clickhouse-server (18.16) with a config generated under the stack directory: loopback
 * only, one user (`default`) whose password is generated on the first start and kept in
 * <stackDir>/clickhouse-password (users.xml holds its SHA-256), queries logged to system.query_log.
 */
export class LocalClickHouse {
  readonly dir: string;
  readonly logFile: string;
  readonly pidFile: string;

  constructor(private readonly config: TallyConfig) {
    this.dir = path.join(config.stackDir, 'clickhouse');
    this.logFile = path.join(this.dir, 'log', 'server.log');
    this.pidFile = path.join(this.dir, 'clickhouse.pid');
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
    await waitFor('ClickHouse', async () => {
      if (this.pid === undefined) {
        throw new StackError(`clickhouse-server exited at start; last log lines:\n${tail(path.join(this.dir, 'log', 'error.log'), 20)}`);
      }
      return this.ping();
    }, 60_000, `see ${this.logFile}`);
  }

  /** True when the server answers a query with the configured credentials (/ping needs none). */
  async ping(): Promise<boolean> {
    const { url, user, password } = this.config.clickhouse;
    const res = await fetch(`${url}/?query=SELECT%201`, {
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
    const { httpPort, tcpPort } = this.config.clickhouse;
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
</yandex>
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
}
