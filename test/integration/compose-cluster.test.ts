/**
 * docker-compose.cluster.yml, checked without a Docker engine like docker-compose.yml
 * (compose-fixtures.ts), plus what a cluster needs: three KRaft nodes with replication 3 and
 * min.insync.replicas 2 for tally's and Kafka's internal topics, two ClickHouse replicas with
 * distinct {replica} macros on one Keeper, and a tally environment that names every broker and
 * replica and makes tally's config a cluster with an insert quorum of both.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../server/src/config/index.js';
import {
  assertApiPublished, assertClickHouseServer, assertKafkaNode, assertOneTallyImage, assertValidWithoutWarnings, bindMounts, commandOf,
  composeCopies, dependsOn, describeBrokenCopies, ensureDockerCompose, environment, healthTest, namedVolumes, resolvedConfig,
  tallyConfigOf, type ComposeConfig,
} from './compose-fixtures.js';

const composeFile = path.join(repoRoot, 'docker-compose.cluster.yml');
const kafkaNodes = ['kafka-1', 'kafka-2', 'kafka-3'];
const replicas = ['clickhouse-1', 'clickhouse-2'];
const keeper = 'clickhouse-keeper';
const servers = [...kafkaNodes, ...replicas];
const aggregators = ['aggregator-1', 'aggregator-2'];
const tallyRoles = [...aggregators, 'sink', 'api'];

interface XmlElement { path: string; text: string; attrs: Record<string, string> }

/** Every element of an XML file with its slash-separated path from the root (ElementTree, as for the YAML). */
function xmlElements(file: string): XmlElement[] {
  const script = `
import json, sys, xml.etree.ElementTree as ET
out = []
def walk(e, p):
    p = p + '/' + e.tag
    out.append({'path': p[1:], 'text': (e.text or '').strip(), 'attrs': e.attrib})
    for c in e: walk(c, p)
walk(ET.parse(sys.argv[1]).getroot(), '')
json.dump(out, sys.stdout)`;
  const r = spawnSync('python3', ['-c', script, file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `could not read ${file}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as XmlElement[];
}

function xmlAll(elements: XmlElement[], p: string): XmlElement[] {
  return elements.filter((e) => e.path === p);
}

function xmlOne(elements: XmlElement[], p: string): XmlElement {
  const found = xmlAll(elements, p);
  assert.equal(found.length, 1, `${p}: ${found.length} elements`);
  return found[0];
}

/** An element's value on a server: its text, or the server's environment variable it names in from_env. */
function valueOn(e: XmlElement, env: Record<string, string>): string {
  return e.attrs.from_env === undefined ? e.text : (env[e.attrs.from_env] ?? '');
}

/** What a ClickHouse server of the file uses for replication: its replica name, its interserver host, and the Keeper it connects to. */
function replicationOf(config: ComposeConfig, name: string) {
  const s = config.services[name];
  const file = bindMounts(s)['/etc/clickhouse-server/config.d/replication.xml'];
  assert.ok(file, `${name}: replication.xml not mounted into config.d`);
  const xml = xmlElements(file);
  const env = environment(s);
  const node = (tag: string) => xmlAll(xml, `clickhouse/zookeeper/node/${tag}`).map((e) => valueOn(e, env));
  return {
    replica: valueOn(xmlOne(xml, 'clickhouse/macros/replica'), env),
    interserverHost: valueOn(xmlOne(xml, 'clickhouse/interserver_http_host'), env),
    keepers: node('host').map((host, i) => `${host}:${node('port')[i]}`),
    remoteReplicas: xmlAll(xml, 'clickhouse/remote_servers/tally/shard/replica/host').map((e) => valueOn(e, env)),
  };
}

/** Both replicas named, each differently: Keeper keeps one replica's part log per name, so two servers under one name would take each other's place. */
function assertDistinctReplicas(config: ComposeConfig): void {
  const names = replicas.map((r) => replicationOf(config, r).replica);
  for (const [i, n] of names.entries()) assert.ok(n !== '', `${replicas[i]}: empty {replica} macro`);
  assert.equal(new Set(names).size, replicas.length, `the replicas share a {replica} macro: ${names.join(', ')}`);
}

describe('docker-compose.cluster.yml', function () {
  this.timeout(300_000);
  let config: ComposeConfig;

  before(function () {
    ensureDockerCompose();
    config = resolvedConfig(composeFile);
  });

  it('is valid for docker-compose config -q, without warnings', () => {
    assertValidWithoutWarnings(composeFile);
  });

  it('has three Kafka nodes, two ClickHouse replicas, a Keeper, the one-shot init and the tally roles', () => {
    assert.deepEqual(Object.keys(config.services).sort(), [...servers, keeper, 'init', ...tallyRoles].sort());
  });

  it('runs three KRaft nodes of one cluster, a controller quorum of all three, each on its own volume', () => {
    const envs = kafkaNodes.map((n) => assertKafkaNode(n, config.services[n], config.volumes ?? {}));
    assert.deepEqual(envs.map((e) => e.KAFKA_NODE_ID).sort(), ['1', '2', '3']);
    assert.equal(new Set(envs.map((e) => e.CLUSTER_ID)).size, 1, 'the nodes format their storage with different cluster ids');
    for (const e of envs) assert.deepEqual(e.KAFKA_CONTROLLER_QUORUM_VOTERS.split(',').sort(), kafkaNodes.map((n, i) => `${envs[i].KAFKA_NODE_ID}@${n}:9093`).sort());
    const volumes = kafkaNodes.flatMap((n) => Object.keys(namedVolumes(config.services[n], config.volumes ?? {})));
    assert.equal(new Set(volumes).size, kafkaNodes.length, `the nodes share a data volume: ${volumes.join(', ')}`);
  });

  it('replicates every topic 3 times with 2 in sync, the offsets and transaction logs too', () => {
    // tally creates its topics with replication factor -1: the brokers' defaults decide.
    const expected = {
      KAFKA_DEFAULT_REPLICATION_FACTOR: '3',
      KAFKA_MIN_INSYNC_REPLICAS: '2',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '3',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '3',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '2',
    };
    for (const n of kafkaNodes) {
      const env = environment(config.services[n]);
      for (const [k, v] of Object.entries(expected)) assert.equal(env[k], v, `${n}: ${k}=${env[k]}`);
    }
  });

  it('runs two replicas of one pinned current ClickHouse, with distinct {replica} macros on the same Keeper', () => {
    for (const r of replicas) assertClickHouseServer(r, config.services[r], config.volumes ?? {});
    assert.equal(new Set(replicas.map((r) => config.services[r].image)).size, 1, 'the replicas run different images');
    assertDistinctReplicas(config);
    const keeperXml = xmlElements(bindMounts(config.services[keeper])['/etc/clickhouse-keeper/keeper_config.xml']);
    const keeperAddress = `${keeper}:${xmlOne(keeperXml, 'clickhouse/keeper_server/tcp_port').text}`;
    for (const r of replicas) {
      const rep = replicationOf(config, r);
      assert.deepEqual(rep.keepers, [keeperAddress], `${r}: Keeper`);
      // The other replica fetches parts from this name, so it must be one the network resolves.
      assert.equal(rep.interserverHost, r, `${r}: interserver_http_host`);
      assert.deepEqual(rep.remoteReplicas, replicas, `${r}: remote_servers tally`);
      assert.equal(dependsOn(config.services[r])[keeper], 'service_healthy', `${r} must start after a healthy Keeper`);
    }
  });

  it('runs one Keeper, pinned to the servers\' release, ready-checked, its data on a named volume', () => {
    const k = config.services[keeper];
    const [server] = /\d+\.\d+$/.exec(config.services[replicas[0]].image ?? '') ?? [];
    assert.equal(k.image, `clickhouse/clickhouse-keeper:${server}`);
    const xml = xmlElements(bindMounts(k)['/etc/clickhouse-keeper/keeper_config.xml']);
    assert.equal(xmlOne(xml, 'clickhouse/listen_host').text, '0.0.0.0', 'Keeper must listen beyond loopback for the servers');
    assert.deepEqual(xmlAll(xml, 'clickhouse/keeper_server/raft_configuration/server/hostname').map((e) => e.text), [keeper]);
    assert.match(healthTest(k), new RegExp(`127\\.0\\.0\\.1:${xmlOne(xml, 'clickhouse/keeper_server/http_control/port').text}/ready`));
    assert.ok(Object.values(namedVolumes(k, config.volumes ?? {})).includes('/var/lib/clickhouse'), 'no named volume on /var/lib/clickhouse');
    for (const p of ['log_storage_path', 'snapshot_storage_path']) assert.match(xmlOne(xml, `clickhouse/keeper_server/${p}`).text, /^\/var\/lib\/clickhouse\//, `${p} off the volume`);
  });

  it('runs init once every server is healthy; the roles once init succeeded, from the one image', () => {
    const healthy = Object.fromEntries(servers.map((s) => [s, 'service_healthy']));
    assert.deepEqual(dependsOn(config.services.init), healthy);
    assert.deepEqual(commandOf(config.services.init), ['stack', 'up']);
    assert.ok(!['always', 'unless-stopped'].includes(config.services.init.restart ?? 'no'), 'a one-shot must not restart');
    assertOneTallyImage(config, ['init', ...tallyRoles]);
    for (const role of tallyRoles) {
      const s = config.services[role];
      assert.deepEqual(commandOf(s), [role.replace(/-\d+$/, '')], `${role}: command`);
      assert.deepEqual(dependsOn(s), { ...healthy, init: 'service_completed_successfully' }, `${role}: depends_on`);
      assert.ok(healthTest(s) !== '', `${role}: no health check`);
      assert.equal(s.restart, 'unless-stopped', `${role}: restart`);
    }
  });

  it('gives every tally process every broker and replica, a cluster and an insert quorum of both, in external mode', () => {
    const brokers = kafkaNodes.map((n) => environment(config.services[n]).KAFKA_ADVERTISED_LISTENERS.replace('PLAINTEXT://', ''));
    for (const role of ['init', ...tallyRoles]) {
      const c = tallyConfigOf(role, config.services[role], config.services[replicas[0]]);
      assert.deepEqual(c.kafka.brokers.split(','), brokers, `${role}: KAFKA_BROKERS`);
      assert.deepEqual(c.clickhouse.urls, replicas.map((r) => `http://${r}:8123`), `${role}: CLICKHOUSE_URL`);
      assert.equal(c.clickhouse.urls.length, 2);
      assert.equal(c.clickhouse.cluster, 'tally', `${role}: TALLY_CLICKHOUSE_CLUSTER`);
      assert.equal(c.clickhouse.insertQuorum, 2, `${role}: insert quorum`);
      // Both replicas have the user tally logs in as.
      for (const r of replicas) assert.equal(environment(config.services[r]).CLICKHOUSE_PASSWORD, c.clickhouse.password, `${r}: password`);
    }
  });

  it('runs two aggregators with distinct, fixed instance ids, neither holding a name or a host port', () => {
    const ids = aggregators.map((a) => tallyConfigOf(a, config.services[a], config.services[replicas[0]]).instanceId);
    assert.deepEqual(ids, aggregators, 'TALLY_INSTANCE_ID');
    for (const a of aggregators) {
      assert.equal(config.services[a].container_name, undefined, `${a}: container_name`);
      assert.equal(config.services[a].ports, undefined, `${a}: ports`);
    }
  });

  it('publishes the API on 8080 and checks /healthz', () => {
    assertApiPublished(config.services.api);
  });

  describeBrokenCopies(composeFile);

  describe('a copy with one replica name on both servers', () => {
    const copyWith = composeCopies(composeFile);

    it('is refused by the replica check', () => {
      const copy = resolvedConfig(copyWith(['REPLICA_NAME: clickhouse-2', 'REPLICA_NAME: clickhouse-1']));
      assert.throws(() => assertDistinctReplicas(copy), /share a \{replica\} macro: clickhouse-1, clickhouse-1/);
    });
  });
});
