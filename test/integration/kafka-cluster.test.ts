import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KAFKA_NODE_PORT_STEP, loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { ensureKafkaJars, stackDown, stackUp } from '../../server/src/stack/index.js';
import { freePort } from '../kit/free-port.js';

/** A free base port whose +100 and +200 neighbours (the cluster port scheme) are valid ports; they are not probed. */
async function freeNodePorts(): Promise<number> {
  for (;;) {
    const base = await freePort();
    if (base + 2 * KAFKA_NODE_PORT_STEP + 1 > 65535) continue;
    return base;
  }
}

describe('local stack: a three-node Kafka cluster', function () {
  this.timeout(180_000);
  let config: TallyConfig;
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-cluster-'));
    const port = await freeNodePorts();
    const controllerPort = await freeNodePorts();
    config = loadConfig({
      ...process.env, TALLY_STACK_DIR: dir, TALLY_KAFKA_PORT: String(port), TALLY_KAFKA_CONTROLLER_PORT: String(controllerPort),
      TALLY_KAFKA_NODES: '3', KAFKA_BROKERS: undefined, CLICKHOUSE_URL: 'http://127.0.0.1:1',
    });
    await stackUp(config, () => undefined);
  });

  after(async () => {
    await stackDown(config, () => undefined, { kafka: true, clickhouse: false });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('gives every tally topic replication factor 3 and min.insync.replicas 2', () => {
    const libs = ensureKafkaJars(config.cacheDir, () => undefined);
    const bootstrap = config.kafka.brokers.split(',')[0];
    for (const topic of [config.topics.impressions, config.topics.counts, config.topics.changelog, config.topics.dlq, config.topics.repartition]) {
      const r = spawnSync('java', ['-cp', `${libs}/*`, 'org.apache.kafka.tools.TopicCommand', '--bootstrap-server', bootstrap, '--describe', '--topic', topic], { encoding: 'utf8' });
      assert.match(r.stdout, /ReplicationFactor: 3\s+Configs: .*min\.insync\.replicas=2/, `${topic}: ${r.stdout}${r.stderr}`);
    }
  });
});
