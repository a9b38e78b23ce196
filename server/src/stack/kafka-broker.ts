import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { KAFKA_NODE_PORT_STEP as NODE_PORT_STEP, type TallyConfig } from '../config/index.js';
import { StackError } from '../errors/index.js';
import { fetchMetadata } from '../kafka/index.js';
import { ensureKafkaJars } from './kafka-dist.js';
import { runningPid, startDetached, stopProcess, tail, waitFor } from './processes.js';

/**
 * One KRaft node (broker + controller in one JVM) of the local stack. With TALLY_KAFKA_NODES=1 it lives
 * in <stackDir>/kafka as the single-node stack always did; with 3, node i lives in <stackDir>/kafka/node-<i>.
 */
export class LocalKafkaBroker {
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly pidFile: string;
  readonly nodeId: number;
  readonly port: number;
  readonly controllerPort: number;

  constructor(private readonly config: TallyConfig, index = 0) {
    const root = path.join(config.stackDir, 'kafka');
    this.dir = config.kafka.nodes === 1 ? root : path.join(root, `node-${index + 1}`);
    this.dataDir = path.join(this.dir, 'data');
    this.logFile = path.join(this.dir, 'broker.log');
    this.pidFile = path.join(this.dir, 'broker.pid');
    this.nodeId = index + 1;
    this.port = config.kafka.port + NODE_PORT_STEP * index;
    this.controllerPort = config.kafka.controllerPort + NODE_PORT_STEP * index;
  }

  get pid(): number | undefined {
    return runningPid(this.pidFile);
  }

  get formatted(): boolean {
    return fs.existsSync(path.join(this.dataDir, 'meta.properties'));
  }

  /**
   * Starts the node unless it runs, formatting its storage first with `clusterId` (a fresh one when
   * not given) if it never ran; returns once its own listener answers metadata.
   */
  async start(log: (msg: string) => void, clusterId?: string): Promise<void> {
    if (this.pid === undefined) {
      const classpath = kafkaClasspath(this.config, log);
      fs.mkdirSync(this.dataDir, { recursive: true });
      const props = this.writeConfig();
      if (!this.formatted) this.formatStorage(classpath, props, clusterId ?? newClusterId(classpath));
      // Three JVMs share a small machine: a modest heap each, and only the quick JIT (C1), which
      // halves the CPU a start takes (measured 9.5 → 5.5 s of CPU; a rolling restart starts each).
      const heap = this.config.kafka.nodes === 1 ? ['-Xms256m', '-Xmx1g'] : ['-Xms128m', '-Xmx512m', '-XX:TieredStopAtLevel=1'];
      startDetached('java', [
        ...heap, '-XX:+UseG1GC', '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${path.join(this.dir, 'log4j2.properties')}`,
        '-cp', classpath, 'kafka.Kafka', props,
      ], { cwd: this.dir, logFile: this.logFile, pidFile: this.pidFile });
    }
    await waitFor(`Kafka node ${this.nodeId}`, async () => {
      if (this.pid === undefined) throw new StackError(`Kafka node ${this.nodeId} exited`);
      await fetchMetadata(`127.0.0.1:${this.port}`, 2000);
      return true;
    }, 90_000, `see ${this.logFile}`).catch((err: unknown) => {
      if (err instanceof StackError && this.pid === undefined) {
        throw new StackError(`Kafka node ${this.nodeId} exited at start; last log lines:\n${tail(this.logFile, 20)}`);
      }
      throw err;
    });
  }

  async stop(): Promise<boolean> {
    // A controlled shutdown flushes logs and writes clean-shutdown markers; give it time.
    return stopProcess(this.pidFile, 60_000);
  }

  private writeConfig(): string {
    const { nodes, controllerPort } = this.config.kafka;
    const voters = Array.from({ length: nodes }, (_, i) => `${i + 1}@127.0.0.1:${controllerPort + NODE_PORT_STEP * i}`);
    // Internal topics get every node as a replica (1 or 3); two must acknowledge when there are three.
    const minIsr = nodes >= 3 ? 2 : 1;
    const props = path.join(this.dir, 'server.properties');
    fs.writeFileSync(props, [
      '# Written by `tally stack up`; edits are overwritten.',
      'process.roles=broker,controller',
      `node.id=${this.nodeId}`,
      `controller.quorum.voters=${voters.join(',')}`,
      `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${this.dataDir}`,
      'num.partitions=1',
      `offsets.topic.replication.factor=${nodes}`,
      'offsets.topic.num.partitions=8',
      `transaction.state.log.replication.factor=${nodes}`,
      `transaction.state.log.min.isr=${minIsr}`,
      'transaction.state.log.num.partitions=8',
      `default.replication.factor=${nodes}`,
      `min.insync.replicas=${minIsr}`,
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=false',
      'log.cleaner.enable=true',
      // Aborted transactions' ids expire so restarts stay quick on a dev box.
      'transaction.max.timeout.ms=900000',
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(this.dir, 'log4j2.properties'), [
      'rootLogger.level = INFO',
      'rootLogger.appenderRef.out.ref = OUT',
      'appender.out.type = Console',
      'appender.out.name = OUT',
      'appender.out.layout.type = PatternLayout',
      'appender.out.layout.pattern = [%d] %p %m (%c)%n',
      'logger.kafka.name = kafka',
      'logger.kafka.level = WARN',
      'logger.apache.name = org.apache.kafka',
      'logger.apache.level = WARN',
      'logger.started.name = kafka.server.KafkaRaftServer',
      'logger.started.level = INFO',
      '',
    ].join('\n'));
    return props;
  }

  private formatStorage(classpath: string, props: string, clusterId: string): void {
    const r = spawnSync('java', ['-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props], { encoding: 'utf8' });
    if (r.status !== 0) throw new StackError(`kafka-storage format failed: ${r.stdout}${r.stderr}`);
  }
}

export function kafkaClasspath(config: TallyConfig, log: (msg: string) => void): string {
  return `${ensureKafkaJars(config.cacheDir, log)}/*`;
}

/** A fresh KRaft cluster id: every node of one cluster is formatted with the same. */
export function newClusterId(classpath: string): string {
  const uuid = spawnSync('java', ['-cp', classpath, 'kafka.tools.StorageTool', 'random-uuid'], { encoding: 'utf8' });
  const clusterId = uuid.stdout.trim().split('\n').pop() ?? '';
  if (uuid.status !== 0 || !/^[A-Za-z0-9_-]{22}$/.test(clusterId)) {
    throw new StackError(`kafka-storage random-uuid failed: ${uuid.stderr}`);
  }
  return clusterId;
}
