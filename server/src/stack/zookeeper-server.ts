import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TallyConfig } from '../config/index.js';
import { StackError } from '../errors/index.js';
import { ensureMavenJars } from './maven-jars.js';
import { runningPid, startDetached, stopProcess, tail, waitFor } from './processes.js';

const zookeeper = {
  name: 'ZooKeeper',
  pomFile: path.join(path.dirname(fileURLToPath(import.meta.url)), 'zookeeper.pom.xml'),
  versionProperty: 'zookeeper.version',
};

/**
 * One standalone Apache ZooKeeper (jars from Maven Central) in <stackDir>/zookeeper: the
 * coordination the local stack's two ClickHouse replicas share. Loopback only, no admin server.
 */
export class LocalZooKeeper {
  readonly dir: string;
  readonly logFile: string;
  readonly pidFile: string;

  constructor(private readonly config: TallyConfig) {
    this.dir = path.join(config.stackDir, 'zookeeper');
    this.logFile = path.join(this.dir, 'zookeeper.log');
    this.pidFile = path.join(this.dir, 'zookeeper.pid');
  }

  get pid(): number | undefined {
    return runningPid(this.pidFile);
  }

  get address(): string {
    return `127.0.0.1:${this.config.clickhouse.zookeeperPort}`;
  }

  async start(log: (msg: string) => void): Promise<void> {
    if (this.pid === undefined) {
      const libs = ensureMavenJars(zookeeper, this.config.cacheDir, log);
      fs.mkdirSync(path.join(this.dir, 'data'), { recursive: true });
      const cfg = path.join(this.dir, 'zoo.cfg');
      fs.writeFileSync(cfg, [
        '# Written by `tally stack up`; edits are overwritten.',
        `dataDir=${path.join(this.dir, 'data')}`,
        `clientPort=${this.config.clickhouse.zookeeperPort}`,
        'clientPortAddress=127.0.0.1',
        'tickTime=2000',
        'maxClientCnxns=0',
        'admin.enableServer=false',
        '4lw.commands.whitelist=ruok,srvr',
        'autopurge.purgeInterval=1',
        '',
      ].join('\n'));
      startDetached('java', [
        '-Xms64m', '-Xmx256m', '-XX:TieredStopAtLevel=1', '-Djava.awt.headless=true',
        '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn', '-Dzookeeper.jmx.log4j.disable=true',
        '-cp', `${libs}/*`, 'org.apache.zookeeper.server.ZooKeeperServerMain', cfg,
      ], { cwd: this.dir, logFile: this.logFile, pidFile: this.pidFile });
    }
    await waitFor('ZooKeeper', async () => this.pid === undefined || this.serving(), 60_000, `see ${this.logFile}`);
    if (this.pid === undefined) throw new StackError(`ZooKeeper exited at start; last log lines:\n${tail(this.logFile, 20)}`);
  }

  async stop(): Promise<boolean> {
    return stopProcess(this.pidFile, 15_000);
  }

  /** True once it serves clients ('srvr' names its mode then; 'ruok' answers imok even when it cannot). */
  async serving(): Promise<boolean> {
    return (await this.fourLetter('srvr').catch(() => '')).includes('Mode: ');
  }

  private fourLetter(command: 'srvr'): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.config.clickhouse.zookeeperPort, '127.0.0.1');
      let answer = '';
      socket.setTimeout(2000, () => socket.destroy(new Error('ZooKeeper did not answer')));
      socket.on('connect', () => socket.write(command));
      socket.on('data', (d) => { answer += d.toString(); });
      socket.on('end', () => resolve(answer.trim()));
      socket.on('error', reject);
    });
  }
}
