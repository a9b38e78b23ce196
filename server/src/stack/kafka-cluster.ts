import type { TallyConfig } from '../config/index.js';
import { StackError } from '../errors/index.js';
import { fetchMetadata } from '../kafka/index.js';
import { kafkaClasspath, LocalKafkaBroker, newClusterId } from './kafka-broker.js';
import { waitFor } from './processes.js';

/** The local stack's KRaft nodes (TALLY_KAFKA_NODES: 1, or 3 forming one controller quorum). */
export class LocalKafkaCluster {
  readonly nodes: LocalKafkaBroker[];

  constructor(private readonly config: TallyConfig) {
    this.nodes = Array.from({ length: config.kafka.nodes }, (_, i) => new LocalKafkaBroker(config, i));
  }

  /** Pids of the running nodes. */
  get pids(): number[] {
    return this.nodes.flatMap((n) => (n.pid === undefined ? [] : [n.pid]));
  }

  get running(): boolean {
    return this.pids.length > 0;
  }

  /** Starts the nodes not running (in parallel: a quorum needs a majority up) and waits until all are brokers of the cluster. */
  async start(log: (msg: string) => void): Promise<void> {
    const unformatted = this.nodes.filter((n) => !n.formatted);
    if (unformatted.length > 0 && unformatted.length < this.nodes.length) {
      throw new StackError(`Kafka nodes ${unformatted.map((n) => n.nodeId).join(', ')} have no storage but others do; `
        + `remove ${this.nodes[0].dir}/.. to start the cluster afresh`);
    }
    const clusterId = unformatted.length > 0 ? newClusterId(kafkaClasspath(this.config, log)) : undefined;
    await Promise.all(this.nodes.map((n) => n.start(log, clusterId)));
    await waitFor(`Kafka cluster of ${this.nodes.length}`, async () =>
      (await fetchMetadata(this.config.kafka.brokers, 2000)).brokers.length === this.nodes.length,
    90_000, `see ${this.nodes.map((n) => n.logFile).join(', ')}`);
  }

  /** Stops every node; true when one was running. */
  async stop(): Promise<boolean> {
    const stopped = await Promise.all(this.nodes.map((n) => n.stop()));
    return stopped.some(Boolean);
  }
}
