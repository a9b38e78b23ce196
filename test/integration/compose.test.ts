/**
 * docker-compose.yml, checked without a Docker engine (compose-fixtures.ts: `config -q` against
 * the Compose schema, and the resolved config read back): the services, their health checks and
 * volumes, the start order, and an environment that tally's own config schema accepts in
 * external mode.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { repoRoot } from '../../server/src/config/index.js';
import { stackCommand } from '../../server/src/cli/stack-command.js';
import {
  assertApiPublished, assertClickHouseServer, assertKafkaNode, assertOneTallyImage, assertValidWithoutWarnings, commandOf,
  dependsOn, describeBrokenCopies, ensureDockerCompose, environment, healthTest, resolvedConfig, tallyConfigOf, type ComposeConfig,
} from './compose-fixtures.js';

const composeFile = path.join(repoRoot, 'docker-compose.yml');
const tallyRoles = ['aggregator', 'sink', 'api'] as const;

describe('docker-compose.yml', function () {
  this.timeout(300_000);
  let config: ComposeConfig;

  before(function () {
    ensureDockerCompose();
    config = resolvedConfig(composeFile);
  });

  it('is valid for docker-compose config -q, without warnings', () => {
    assertValidWithoutWarnings(composeFile);
  });

  it('has the servers, the one-shot init and the tally roles', () => {
    const names = Object.keys(config.services).sort();
    for (const s of ['kafka', 'clickhouse', 'init', ...tallyRoles]) assert.ok(names.includes(s), `service ${s} missing (have ${names.join(', ')})`);
  });

  it('runs Kafka as a single KRaft node with a health check and a named volume', () => {
    const env = assertKafkaNode('kafka', config.services.kafka, config.volumes ?? {});
    assert.equal(env.KAFKA_CONTROLLER_QUORUM_VOTERS, `${env.KAFKA_NODE_ID}@kafka:9093`);
    for (const k of ['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR', 'KAFKA_MIN_INSYNC_REPLICAS']) {
      assert.equal(env[k], '1', `${k}=${env[k]}`);
    }
  });

  it('runs a pinned current ClickHouse with a health check, a named volume and nofile ulimits', () => {
    assertClickHouseServer('clickhouse', config.services.clickhouse, config.volumes ?? {});
  });

  it('runs init once the servers are healthy, with a command the CLI has', () => {
    const init = config.services.init;
    assert.deepEqual(dependsOn(init), { kafka: 'service_healthy', clickhouse: 'service_healthy' });
    assert.ok(!['always', 'unless-stopped'].includes(init.restart ?? 'no'), `a one-shot must not restart (restart: ${init.restart})`);
    const [group, sub] = commandOf(init);
    assert.deepEqual([group, sub], ['stack', 'up']);
    assert.ok(stackCommand().commands.some((c) => c.name() === sub), `tally ${group} has no '${sub}'`);
  });

  it('starts every tally role after healthy servers and a successful init, from the one image', () => {
    assertOneTallyImage(config, ['init', ...tallyRoles]);
    for (const role of tallyRoles) {
      const s = config.services[role];
      assert.deepEqual(commandOf(s), [role], `${role}: command`);
      const deps = dependsOn(s);
      assert.equal(deps.kafka, 'service_healthy', `${role} must wait for a healthy kafka`);
      assert.equal(deps.clickhouse, 'service_healthy', `${role} must wait for a healthy clickhouse`);
      assert.equal(deps.init, 'service_completed_successfully', `${role} must wait for init to succeed`);
      assert.ok(healthTest(s) !== '', `${role}: no health check`);
      assert.equal(s.restart, 'unless-stopped', `${role}: restart`);
    }
    // Scaling the aggregator needs copies that do not collide on a name or a host port.
    assert.equal(config.services.aggregator.container_name, undefined);
    assert.equal(config.services.aggregator.ports, undefined);
  });

  it('gives every tally process an environment tally accepts, in external mode', () => {
    for (const role of ['init', ...tallyRoles]) {
      const env = environment(config.services[role]);
      assert.equal(env.KAFKA_BROKERS, 'kafka:9092', `${role}: KAFKA_BROKERS`);
      assert.equal(env.CLICKHOUSE_URL, 'http://clickhouse:8123', `${role}: CLICKHOUSE_URL`);
      const c = tallyConfigOf(role, config.services[role], config.services.clickhouse);
      assert.equal(c.clickhouse.cluster, undefined, `${role}: one server, no Replicated tables`);
    }
  });

  it('publishes the API on 8080 and checks /healthz', () => {
    assertApiPublished(config.services.api);
  });

  describeBrokenCopies(composeFile);
});
