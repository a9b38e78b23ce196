import type { TallyConfig } from '../config/index.js';
import { LocalClickHouse } from './clickhouse-server.js';
import { LocalZooKeeper } from './zookeeper-server.js';

/** The local stack's ClickHouse servers (TALLY_CLICKHOUSE_REPLICAS: 1, or 2 replicas with a ZooKeeper). */
export class LocalClickHouseReplicas {
  readonly servers: LocalClickHouse[];
  /** Present with two replicas. */
  readonly zookeeper?: LocalZooKeeper;

  constructor(config: TallyConfig) {
    this.servers = Array.from({ length: config.clickhouse.replicas }, (_, i) => new LocalClickHouse(config, i));
    if (config.clickhouse.replicas > 1) this.zookeeper = new LocalZooKeeper(config);
  }

  /** Pids of the running ClickHouse servers. */
  get pids(): number[] {
    return this.servers.flatMap((s) => (s.pid === undefined ? [] : [s.pid]));
  }

  get running(): boolean {
    return this.servers.some((s) => s.pid !== undefined);
  }

  /** ZooKeeper first (a replica starts read-only without it), then the servers in parallel. */
  async start(log: (msg: string) => void): Promise<void> {
    if (this.zookeeper) {
      await this.zookeeper.start(log);
      log(`zookeeper up at ${this.zookeeper.address} (pid ${this.zookeeper.pid})`);
    }
    await Promise.all(this.servers.map((s) => s.start(log)));
  }

  /** True when every server answers a query. */
  async ping(): Promise<boolean> {
    const up = await Promise.all(this.servers.map((s) => s.ping().catch(() => false)));
    return up.every(Boolean);
  }

  /** The servers, then ZooKeeper; true when one was running. */
  async stop(): Promise<boolean> {
    const stopped = await Promise.all(this.servers.map((s) => s.stop()));
    const zk = (await this.zookeeper?.stop()) ?? false;
    return stopped.some(Boolean) || zk;
  }

  logFiles(): string[] {
    return [...this.servers.map((s) => s.logFile), ...(this.zookeeper ? [this.zookeeper.logFile] : [])];
  }
}
