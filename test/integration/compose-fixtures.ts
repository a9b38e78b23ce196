/**
 * What the compose tests (compose.test.ts: docker-compose.yml; compose-cluster.test.ts:
 * docker-compose.cluster.yml) share, checked without a Docker engine: `docker-compose config -q`
 * (Debian's docker-compose 1.29, the v1 implementation) validates a file against the Compose
 * schema, and the resolved config (`docker-compose config`, YAML) is read back as an object.
 * Also the checks both files must pass: ClickHouse servers, KRaft nodes, tally's image and
 * environment, and copies broken on purpose that `config -q` must refuse.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { ensureDebianPackage } from '../../server/src/stack/index.js';

interface Healthcheck { test?: string[] | string; disable?: boolean }
type DependsOn = string[] | Record<string, { condition?: string }>;
type Volume = string | { type?: string; source?: string; target?: string };
export interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string[] | string;
  environment?: Record<string, string | number | null> | string[];
  depends_on?: DependsOn;
  healthcheck?: Healthcheck;
  volumes?: Volume[];
  ports?: Array<string | number | { target?: number; published?: number | string }>;
  restart?: string;
  ulimits?: Record<string, number | { soft?: number; hard?: number }>;
  container_name?: string;
}
export interface ComposeConfig {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** Installs docker-compose (Debian's package) if missing and prints its version. */
export function ensureDockerCompose(): void {
  ensureDebianPackage('docker-compose', 'docker-compose', (m) => process.stderr.write(`      [compose] ${m}\n`));
  const v = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  process.stderr.write(`      [compose] docker-compose ${v.stdout.trim()}\n`);
}

/**
 * The environment docker-compose interpolates ${…} from, without the variables the compose
 * files read (a developer's TALLY_PARTITIONS or CLICKHOUSE_PASSWORD must not change what is
 * checked) and without COMPOSE_* settings that would pick another file or project.
 */
function composeEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(TALLY_|CLICKHOUSE_|KAFKA_|COMPOSE_|LOG_LEVEL$)/.test(k)));
}

export function dockerCompose(file: string, args: string[]) {
  const r = spawnSync('docker-compose', ['-f', file, ...args], { cwd: path.dirname(file), env: composeEnv(), encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

/**
 * The resolved config as an object. docker-compose v1's `config` has no JSON output, so its
 * YAML is converted by PyYAML, which docker-compose v1 itself depends on (python3-yaml).
 */
export function resolvedConfig(file: string): ComposeConfig {
  const r = dockerCompose(file, ['config']);
  assert.equal(r.status, 0, `docker-compose config failed:\n${r.stderr}`);
  const json = spawnSync('python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: r.stdout, encoding: 'utf8' });
  assert.equal(json.status, 0, `could not convert the YAML to JSON:\n${json.stderr}`);
  return JSON.parse(json.stdout) as ComposeConfig;
}

/** `config -q` exits 0 and warns about nothing (an unset variable, a deprecated key go to stderr even with exit 0). */
export function assertValidWithoutWarnings(file: string): void {
  const r = dockerCompose(file, ['config', '-q']);
  assert.equal(r.status, 0, `docker-compose config -q failed:\n${r.stderr}`);
  assert.equal(r.stderr.trim(), '', `docker-compose config -q warned:\n${r.stderr}`);
}

export function dependsOn(s: Service): Record<string, string> {
  const d = s.depends_on ?? {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v.condition ?? 'service_started']));
}

export function environment(s: Service): Record<string, string> {
  const e = s.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

export function healthTest(s: Service): string {
  const t = s.healthcheck?.test;
  if (s.healthcheck?.disable || t === undefined) return '';
  return Array.isArray(t) ? t.join(' ') : t;
}

function sourceAndTarget(v: Volume): [string, string] {
  if (typeof v !== 'string') return [v.source ?? '', v.target ?? ''];
  const [source, target] = v.split(':');
  return [source, target];
}

/** Named volumes a service mounts, as `name -> target`. */
export function namedVolumes(s: Service, declared: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries((s.volumes ?? []).map(sourceAndTarget).filter(([source]) => source in declared));
}

/** Files a service bind-mounts, as `target -> absolute source`; `config` does not check that they exist, so this does. */
export function bindMounts(s: Service): Record<string, string> {
  const out = Object.fromEntries((s.volumes ?? []).map(sourceAndTarget).filter(([source]) => source.startsWith('/')).map(([source, target]) => [target, source]));
  for (const source of Object.values(out)) assert.ok(fs.existsSync(source), `bind mount source ${source} missing`);
  return out;
}

export function commandOf(s: Service): string[] {
  return Array.isArray(s.command) ? s.command : (s.command ?? '').split(/\s+/).filter(Boolean);
}

/** A ClickHouse server: a pinned current image, a health check, its data on a named volume, nofile ulimits, bind mounts that exist. */
export function assertClickHouseServer(name: string, ch: Service, declared: Record<string, unknown>): void {
  const version = /^clickhouse\/clickhouse-server:(\d+)\.(\d+)/.exec(ch.image ?? '');
  assert.ok(version, `${name}: image ${ch.image} is not clickhouse/clickhouse-server pinned to a version`);
  assert.ok(Number(version[1]) >= 24, `${name}: ClickHouse ${version[1]}.${version[2]} is not current`);
  assert.match(healthTest(ch), /(wget|curl|clickhouse-client).*(\/ping|SELECT 1)/i, `${name}: health check`);
  assert.ok(Object.values(namedVolumes(ch, declared)).includes('/var/lib/clickhouse'), `${name}: no named volume on /var/lib/clickhouse`);
  const nofile = ch.ulimits?.nofile;
  assert.ok(typeof nofile === 'number' ? nofile >= 65536 : (nofile?.soft ?? 0) >= 65536, `${name}: nofile ulimit ${JSON.stringify(nofile)}`);
  bindMounts(ch);
}

/** A KRaft node of the apache/kafka image: broker and controller, its own node id and advertised name, a health check, its log dirs on a named volume. */
export function assertKafkaNode(name: string, kafka: Service, declared: Record<string, unknown>): Record<string, string> {
  assert.equal(kafka.image, 'apache/kafka:4.1.1', `${name}: image`);
  const env = environment(kafka);
  assert.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller', `${name}: process roles`);
  assert.match(env.KAFKA_NODE_ID ?? '', /^\d+$/, `${name}: KAFKA_NODE_ID`);
  assert.ok(env.CLUSTER_ID, `${name}: CLUSTER_ID unset (the image needs it in KRaft mode)`);
  assert.ok(env.KAFKA_CONTROLLER_QUORUM_VOTERS.split(',').includes(`${env.KAFKA_NODE_ID}@${name}:9093`), `${name}: not a voter as ${env.KAFKA_NODE_ID}@${name}:9093 in ${env.KAFKA_CONTROLLER_QUORUM_VOTERS}`);
  assert.equal(env.KAFKA_ADVERTISED_LISTENERS, `PLAINTEXT://${name}:9092`, `${name}: advertised listeners`);
  assert.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false', `${name}: auto topic creation`);
  assert.match(healthTest(kafka), /\/opt\/kafka\/bin\/kafka-broker-api-versions\.sh .*--bootstrap-server/, `${name}: health check`);
  const vols = namedVolumes(kafka, declared);
  assert.ok(Object.values(vols).includes(env.KAFKA_LOG_DIRS), `${name}: the named volumes ${JSON.stringify(vols)} do not hold KAFKA_LOG_DIRS=${env.KAFKA_LOG_DIRS}`);
  return env;
}

/** init and the roles: built from the Dockerfile, all into one image name. */
export function assertOneTallyImage(config: ComposeConfig, services: string[]): void {
  const images = new Set<string>();
  for (const name of services) {
    const s = config.services[name];
    assert.ok(s.image, `${name}: no image name`);
    images.add(s.image);
    const build = typeof s.build === 'string' ? { context: s.build, dockerfile: 'Dockerfile' } : s.build;
    assert.ok(build?.context, `${name}: not built from the Dockerfile`);
    assert.ok(fs.existsSync(path.join(build.context, build.dockerfile ?? 'Dockerfile')), `${name}: ${build.context}/${build.dockerfile} missing`);
  }
  assert.equal(images.size, 1, `the tally services use different images: ${[...images].join(', ')}`);
}

/**
 * The config tally loads from a service's environment (only that: nothing of this test process's
 * own), which must be external mode, listen beyond loopback, and log in to ClickHouse as the
 * server's image created its user.
 */
export function tallyConfigOf(name: string, s: Service, clickhouse: Service): TallyConfig {
  const c = loadConfig(environment(s));
  assert.ok(c.kafka.external && c.clickhouse.external, `${name} would start local servers`);
  assert.equal(c.partitions, 8, `${name}: TALLY_PARTITIONS`);
  assert.notEqual(c.http.host, '127.0.0.1', `${name}: TALLY_HTTP_HOST must not be loopback inside a container`);
  const ch = environment(clickhouse);
  assert.equal(c.clickhouse.user, ch.CLICKHOUSE_USER, `${name}: ClickHouse user`);
  assert.equal(c.clickhouse.password, ch.CLICKHOUSE_PASSWORD, `${name}: ClickHouse password`);
  return c;
}

/** The API: published on 8080, checked on /healthz. */
export function assertApiPublished(api: Service): void {
  const targets = (api.ports ?? []).map((p) => (typeof p === 'object' ? Number(p.target) : Number(String(p).split(':').pop())));
  assert.ok(targets.includes(8080), `api ports ${JSON.stringify(api.ports)}`);
  assert.match(healthTest(api), /127\.0\.0\.1:8080\/healthz/);
}

/** A fresh directory per test for copies of a compose file, with one text replaced (or none). */
export function composeCopies(composeFile: string): (replace?: [string, string]) => string {
  let dir = '';
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-compose-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  return (replace) => {
    let text = fs.readFileSync(composeFile, 'utf8');
    if (replace) {
      // Indented YAML, never a comment line: the break must land in the configuration.
      assert.ok(text.includes(replace[0]), `the compose file no longer contains ${JSON.stringify(replace[0])}`);
      text = text.replaceAll(replace[0], replace[1]);
    }
    const file = path.join(dir, path.basename(composeFile));
    fs.writeFileSync(file, text);
    // The bind-mounted files, at the same relative place (config does not read them, the checks do).
    fs.symlinkSync(path.join(path.dirname(composeFile), 'docker'), path.join(dir, 'docker'));
    return file;
  };
}

/** Copies that `config -q` must refuse: the schema check is real, not a pass-through. */
export function describeBrokenCopies(composeFile: string): void {
  describe('a broken copy', () => {
    const copyWith = composeCopies(composeFile);

    it('passes when unchanged (the control)', () => {
      const r = dockerCompose(copyWith(), ['config', '-q']);
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
}
