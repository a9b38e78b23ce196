import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TallyConfig } from '../config/index.js';
import { StackError } from '../errors/index.js';
import { fetchMetadata } from '../kafka/index.js';
import { ensureKafkaJars } from './kafka-dist.js';
import { runningPid, startDetached, stopProcess, tail, waitFor } from './processes.js';

/** A single-node KRaft broker (broker + controller in one JVM) under the stack directory. */
export class LocalKafkaBroker {
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly pidFile: string;

  constructor(private readonly config: TallyConfig) {
    this.dir = path.join(config.stackDir, 'kafka');
    this.dataDir = path.join(this.dir, 'data');
    this.logFile = path.join(this.dir, 'broker.log');
    this.pidFile = path.join(this.dir, 'broker.pid');
  }

  get pid(): number | undefined {
    return runningPid(this.pidFile);
  }

  async start(log: (msg: string) => void): Promise<void> {
    if (this.pid === undefined) {
      const libs = ensureKafkaJars(this.config.cacheDir, log);
      fs.mkdirSync(this.dataDir, { recursive: true });
      const props = this.writeConfig();
      const classpath = `${libs}/*`;
      if (!fs.existsSync(path.join(this.dataDir, 'meta.properties'))) this.formatStorage(classpath, props);
      startDetached('java', [
        '-Xms256m', '-Xmx1g', '-XX:+UseG1GC', '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${path.join(this.dir, 'log4j2.properties')}`,
        '-cp', classpath, 'kafka.Kafka', props,
      ], { cwd: this.dir, logFile: this.logFile, pidFile: this.pidFile });
    }
    await waitFor('Kafka broker', async () => {
      if (this.pid === undefined) throw new StackError(`Kafka broker exited; last log lines:\n${tail(this.logFile, 20)}`);
      await fetchMetadata(this.config.kafka.brokers, 2000);
      return true;
    }, 90_000, `see ${this.logFile}`).catch((err: unknown) => {
      if (err instanceof StackError && this.pid === undefined) {
        throw new StackError(`Kafka broker exited at start; last log lines:\n${tail(this.logFile, 20)}`);
      }
      throw err;
    });
  }

  async stop(): Promise<boolean> {
    // A controlled shutdown flushes logs and writes clean-shutdown markers; give it time.
    return stopProcess(this.pidFile, 60_000);
  }

  private writeConfig(): string {
    const { port, controllerPort } = this.config.kafka;
    const props = path.join(this.dir, 'server.properties');
    fs.writeFileSync(props, [
      '# Written by `tally stack up`; edits are overwritten.',
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${this.dataDir}`,
      'num.partitions=1',
      // Single node: internal topics must not ask for replicas that cannot exist.
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=8',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=8',
      'default.replication.factor=1',
      'min.insync.replicas=1',
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

  private formatStorage(classpath: string, props: string): void {
    const uuid = spawnSync('java', ['-cp', classpath, 'kafka.tools.StorageTool', 'random-uuid'], { encoding: 'utf8' });
    const clusterId = uuid.stdout.trim().split('\n').pop() ?? '';
    if (uuid.status !== 0 || !/^[A-Za-z0-9_-]{22}$/.test(clusterId)) {
      throw new StackError(`kafka-storage random-uuid failed: ${uuid.stderr}`);
    }
    const r = spawnSync('java', ['-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props], { encoding: 'utf8' });
    if (r.status !== 0) throw new StackError(`kafka-storage format failed: ${r.stdout}${r.stderr}`);
  }
}
