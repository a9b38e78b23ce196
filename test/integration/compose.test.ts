/**
 * docker-compose.yml, checked without a Docker engine: `docker-compose config -q` validates it
 * against the Compose schema (Debian's docker-compose 1.29, the v1 implementation), and the
 * resolved config (`docker-compose config`, YAML) is read back to check what the deployment
 * relies on: the services, their health checks and volumes, the start order, and an
 * environment that tally's own config schema accepts in external mode.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, repoRoot } from '../../server/src/config/index.js';
import { stackCommand } from '../../server/src/cli/stack-command.js';
import { ensureDebianPackage } from '../../server/src/stack/index.js';

const composeFile = path.join(repoRoot, 'docker-compose.yml');
const tallyRoles = ['aggregator', 'sink', 'api'] as const;

interface Healthcheck { test?: string[] | string; disable?: boolean }
type DependsOn = string[] | Record<string, { condition?: string }>;
interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string[] | string;
  environment?: Record<string, string | number | null> | string[];
  depends_on?: DependsOn;
  healthcheck?: Healthcheck;
  volumes?: Array<string | { type?: string; source?: string; target?: string }>;
  ports?: Array<string | number | { target?: number; published?: number | string }>;
  restart?: string;
  ulimits?: Record<string, number | { soft?: number; hard?: number }>;
  container_name?: string;
}
interface ComposeConfig {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/**
 * The environment docker-compose interpolates ${…} from, without the variables the compose
 * file reads (a developer's TALLY_PARTITIONS or CLICKHOUSE_PASSWORD must not change what is
 * checked) and without COMPOSE_* settings that would pick another file or project.
 */
function composeEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TALLY_|CLICKHOUSE_|KAFKA_|COMPOSE_|LOG_LEVEL$)/.test(k)));
}

function dockerCompose(file: string, args: string[]) {
  const r = spawnSync('docker-compose', ['-f', file, ...args], { cwd: path.dirname(file), env: composeEnv(), encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

/**
 * The resolved config as an object. docker-compose v1's `config` has no JSON output, so its
 * YAML is converted by PyYAML, which docker-compose v1 itself depends on (python3-yaml).
 */
function resolvedConfig(file: string): ComposeConfig {
  const r = dockerCompose(file, ['config']);
  assert.equal(r.status, 0, `docker-compose config failed:\n${r.stderr}`);
  const json = spawnSync('python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: r.stdout, encoding: 'utf8' });
  assert.equal(json.status, 0, `could not convert the YAML to JSON:\n${json.stderr}`);
  return JSON.parse(json.stdout) as ComposeConfig;
}

function dependsOn(s: Service): Record<string, string> {
  const d = s.depends_on ?? {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v.condition ?? 'service_started']));
}

function environment(s: Service): Record<string, string> {
  const e = s.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

function healthTest(s: Service): string {
  const t = s.healthcheck?.test;
  if (s.healthcheck?.disable || t === undefined) return '';
  return Array.isArray(t) ? t.join(' ') : t;
}

/** Named volumes a service mounts, as `name -> target`. */
function namedVolumes(s: Service, declared: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of s.volumes ?? []) {
    const [source, target] = typeof v === 'string' ? v.split(':') : [v.source ?? '', v.target ?? ''];
    if (source in declared) out[source] = target;
  }
  return out;
}

function commandOf(s: Service): string[] {
  return Array.isArray(s.command) ? s.command : (s.command ?? '').split(/\s+/).filter(Boolean);
}

describe('docker-compose.yml', function () {
  this.timeout(300_000);
  let config: ComposeConfig;

  before(function () {
    ensureDebianPackage('docker-compose', 'docker-compose', (m) => process.stderr.write(`      [compose] ${m}\n`));
    const v = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
    process.stderr.write(`      [compose] docker-compose ${v.stdout.trim()}\n`);
    config = resolvedConfig(composeFile);
  });

  it('is valid for docker-compose config -q, without warnings', () => {
    const r = dockerCompose(composeFile, ['config', '-q']);
    assert.equal(r.status, 0, `docker-compose config -q failed:\n${r.stderr}`);
    // Warnings (an unset variable, a deprecated key) go to stderr even with exit 0.
    assert.equal(r.stderr.trim(), '', `docker-compose config -q warned:\n${r.stderr}`);
  });

  it('has the servers, the one-shot init and the tally roles', () => {
    const names = Object.keys(config.services).sort();
    for (const s of ['kafka', 'clickhouse', 'init', ...tallyRoles]) assert.ok(names.includes(s), `service ${s} missing (have ${names.join(', ')})`);
  });

  it('runs Kafka as a single KRaft node with a health check and a named volume', () => {
    const kafka = config.services.kafka;
    assert.equal(kafka.image, 'apache/kafka:4.1.1');
    const env = environment(kafka);
    assert.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller');
    assert.ok(env.KAFKA_NODE_ID, 'KAFKA_NODE_ID unset');
    assert.ok(env.CLUSTER_ID, 'CLUSTER_ID unset (the image needs it in KRaft mode)');
    assert.match(env.KAFKA_CONTROLLER_QUORUM_VOTERS, new RegExp(`^${env.KAFKA_NODE_ID}@kafka:\\d+$`));
    assert.match(env.KAFKA_ADVERTISED_LISTENERS, /PLAINTEXT:\/\/kafka:9092/);
    for (const k of ['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR', 'KAFKA_MIN_INSYNC_REPLICAS']) {
      assert.equal(env[k], '1', `${k}=${env[k]}`);
    }
    assert.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false');
    assert.match(healthTest(kafka), /\/opt\/kafka\/bin\/kafka-broker-api-versions\.sh .*--bootstrap-server/);
    const vols = namedVolumes(kafka, config.volumes ?? {});
    assert.ok(Object.values(vols).includes(env.KAFKA_LOG_DIRS), `the named volumes ${JSON.stringify(vols)} do not hold KAFKA_LOG_DIRS=${env.KAFKA_LOG_DIRS}`);
  });

  it('runs a pinned current ClickHouse with a health check, a named volume and nofile ulimits', () => {
    const ch = config.services.clickhouse;
    const version = /^clickhouse\/clickhouse-server:(\d+)\.(\d+)/.exec(ch.image ?? '');
    assert.ok(version, `image ${ch.image} is not clickhouse/clickhouse-server pinned to a version`);
    assert.ok(Number(version[1]) >= 24, `ClickHouse ${version[1]}.${version[2]} is not current`);
    assert.match(healthTest(ch), /(wget|curl|clickhouse-client).*(\/ping|SELECT 1)/i);
    assert.ok(Object.values(namedVolumes(ch, config.volumes ?? {})).includes('/var/lib/clickhouse'), 'no named volume on /var/lib/clickhouse');
    const nofile = ch.ulimits?.nofile;
    assert.ok(typeof nofile === 'number' ? nofile >= 65536 : (nofile?.soft ?? 0) >= 65536, `nofile ulimit ${JSON.stringify(nofile)}`);
    // Bind-mounted files are not checked by `config`: they must exist.
    for (const v of ch.volumes ?? []) {
      const source = typeof v === 'string' ? v.split(':')[0] : v.source ?? '';
      if (source.startsWith('/')) assert.ok(fs.existsSync(source), `bind mount source ${source} missing`);
    }
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
    const images = new Set<string>();
    for (const role of ['init', ...tallyRoles]) {
      const s = config.services[role];
      assert.ok(s.image, `${role}: no image name`);
      images.add(s.image);
      const build = typeof s.build === 'string' ? { context: s.build, dockerfile: 'Dockerfile' } : s.build;
      assert.ok(build?.context, `${role}: not built from the Dockerfile`);
      assert.ok(fs.existsSync(path.join(build.context, build.dockerfile ?? 'Dockerfile')), `${role}: ${build.context}/${build.dockerfile} missing`);
    }
    assert.equal(images.size, 1, `the tally services use different images: ${[...images].join(', ')}`);

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
      // Only the compose environment: nothing of this test process's own.
      const c = loadConfig(env);
      assert.ok(c.kafka.external && c.clickhouse.external, `${role} would start local servers`);
      assert.equal(c.partitions, 8, `${role}: TALLY_PARTITIONS`);
      assert.notEqual(c.http.host, '127.0.0.1', `${role}: TALLY_HTTP_HOST must not be loopback inside a container`);
      // ClickHouse's image creates its user from the same two variables.
      const ch = environment(config.services.clickhouse);
      assert.equal(c.clickhouse.user, ch.CLICKHOUSE_USER, `${role}: ClickHouse user`);
      assert.equal(c.clickhouse.password, ch.CLICKHOUSE_PASSWORD, `${role}: ClickHouse password`);
    }
  });

  it('publishes the API on 8080 and checks /healthz', () => {
    const api = config.services.api;
    const targets = (api.ports ?? []).map((p) => (typeof p === 'object' ? Number(p.target) : Number(String(p).split(':').pop())));
    assert.ok(targets.includes(8080), `api ports ${JSON.stringify(api.ports)}`);
    assert.match(healthTest(api), /127\.0\.0\.1:8080\/healthz/);
  });

  describe('a broken copy', () => {
    let dir: string;
    beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-compose-')); });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    function copyWith(replace: [string, string] | undefined): string {
      let text = fs.readFileSync(composeFile, 'utf8');
      if (replace) {
        // Indented YAML, never a comment line: the break must land in the configuration.
        assert.ok(text.includes(replace[0]), `the compose file no longer contains ${JSON.stringify(replace[0])}`);
        text = text.replaceAll(replace[0], replace[1]);
      }
      const file = path.join(dir, 'docker-compose.yml');
      fs.writeFileSync(file, text);
      return file;
    }

    it('passes when unchanged (the control)', () => {
      const r = dockerCompose(copyWith(undefined), ['config', '-q']);
      assert.equal(r.status, 0, r.stderr);
    });

    it('fails config -q with an unknown depends_on condition', () => {
      const r = dockerCompose(copyWith(['\n      condition: service_completed_successfully', '\n      condition: service_finished']), ['config', '-q']);
      assert.notEqual(r.status, 0, 'config -q accepted an unknown condition');
      assert.match(r.stderr, /service_finished/);
    });

    it('fails config -q with a dependency on a missing service', () => {
      const r = dockerCompose(copyWith(['    init:\n      condition: service_completed_successfully', '    migrator:\n      condition: service_completed_successfully']), ['config', '-q']);
      assert.notEqual(r.status, 0, 'config -q accepted a dependency on a missing service');
      assert.match(r.stderr, /migrator/);
    });
  });
});
