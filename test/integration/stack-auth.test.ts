/**
 * The local stack's ClickHouse is not open to everyone on the machine: it requires the password
 * `tally stack up` generated (<stackDir>/clickhouse-password, mode 0600), every tally command
 * finds it by itself, and credentials given in CLICKHOUSE_URL never show in any output.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateToken } from '../../server/src/auth/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { loadConfig, passwordFile, repoRoot, type TallyConfig } from '../../server/src/config/index.js';
import { commandExists, LocalClickHouse } from '../../server/src/stack/index.js';
import { sha256Hex } from '../../server/src/stack/clickhouse-password.js';
import { createSandbox, eventually, freePort, RoleProcess, useStack, type Sandbox } from '../kit/harness.js';

/** `tally <args>` as a child process; stdout and stderr together. */
function tally(env: NodeJS.ProcessEnv, ...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/cli.ts'), ...args], {
    cwd: repoRoot, env, encoding: 'utf8', timeout: 60_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The environment without CLICKHOUSE_PASSWORD: what a developer's shell has. */
function withoutPassword(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.CLICKHOUSE_PASSWORD;
  return out;
}

async function httpQuery(url: string, sql: string, auth?: { user: string; password: string }): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = auth === undefined ? {} : { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}` };
  const res = await fetch(`${url}/`, { method: 'POST', body: sql, headers, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

const REFUSED = /Code: (192|193|194|516)\b/; // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED

describe('local stack: ClickHouse requires its generated password', function () {
  let config: TallyConfig;
  before(async function () {
    this.timeout(300_000);
    config = await useStack();
    if (config.clickhouse.external) this.skip();
  });

  it('the password is in <stackDir>/clickhouse-password (mode 0600); users.xml holds only its SHA-256', () => {
    const file = passwordFile(config.stackDir);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600, `${file} is private`);
    const password = fs.readFileSync(file, 'utf8').trim();
    assert.equal(config.clickhouse.password, password, 'loadConfig reads it');
    assert.match(password, /^[A-Za-z0-9_-]{43}$/);
    const users = fs.readFileSync(path.join(config.stackDir, 'clickhouse', 'users.xml'), 'utf8');
    assert.ok(users.includes(`<password_sha256_hex>${sha256Hex(password)}</password_sha256_hex>`));
    assert.ok(!users.includes(password));
    assert.doesNotMatch(users, /<password>/);
  });

  it('refuses a request without the password or with a wrong one (HTTP 401), over HTTP and the native protocol', async () => {
    const { url, user, password } = config.clickhouse;
    const anonymous = await httpQuery(url, 'SELECT 1');
    assert.equal(anonymous.status, 401, anonymous.body);
    assert.match(anonymous.body, REFUSED);
    // The finding: anyone local could add an admin token. Refused before the table is even looked at.
    const insert = await httpQuery(url, `INSERT INTO ${config.clickhouse.database}.api_tokens FORMAT JSONEachRow {"id":"evil"}`);
    assert.equal(insert.status, 401, insert.body);
    const wrong = await httpQuery(url, 'SELECT 1', { user, password: `${password}x` });
    assert.equal(wrong.status, 401, wrong.body);
    assert.match(wrong.body, REFUSED);
    assert.deepEqual(await httpQuery(url, 'SELECT 1', { user, password }), { status: 200, body: '1\n' });

    if (commandExists('clickhouse-client')) {
      const base = ['--host', '127.0.0.1', '--port', String(config.clickhouse.tcpPort), '--query', 'SELECT 1'];
      const native = spawnSync('clickhouse-client', base, { encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(native.status, 0);
      assert.match(native.stderr, REFUSED);
      const ok = spawnSync('clickhouse-client', [...base, '--password', password], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(ok.stdout, '1\n', ok.stderr);
    }
  });

  it('logs queries to system.query_log (log_queries=1 in the default profile)', async () => {
    const ch = createClickHouse(config, { log: 'off' });
    try {
      const marker = `stack_auth_${crypto.randomBytes(6).toString('hex')}`;
      await queryRows(ch, `SELECT '${marker}' AS m`);
      await eventually('the query in system.query_log', async () => {
        const rows = await queryRows<{ n: string }>(ch,
          `SELECT count() AS n FROM system.query_log WHERE query LIKE '%${marker}%' AND query NOT LIKE '%query_log%'`);
        return Number(rows[0].n) > 0;
      }, 15_000, 300);
    } finally {
      await ch.close();
    }
  });

  describe('tally commands find the password themselves', () => {
    let sb: Sandbox;
    before(async function () {
      this.timeout(120_000);
      sb = await createSandbox('stackauth');
    });
    after(async () => sb?.cleanup());

    it('migrate and tokens create/list work without CLICKHOUSE_PASSWORD', function () {
      this.timeout(120_000);
      const env = withoutPassword(sb.env);
      const migrate = tally(env, 'migrate');
      assert.equal(migrate.code, 0, migrate.out);
      const create = tally(env, 'tokens', 'create', '--name', 'stack-auth', '--scope', 'admin');
      assert.equal(create.code, 0, create.out);
      assert.match(create.out, /tly_/);
      const list = tally(env, 'tokens', 'list');
      assert.equal(list.code, 0, list.out);
      assert.match(list.out, /stack-auth/);
    });
  });

  describe('credentials in CLICKHOUSE_URL never show in output', () => {
    let sb: Sandbox;
    const secret = `s3cr3t${crypto.randomBytes(6).toString('hex')}`;
    before(async function () {
      this.timeout(120_000);
      sb = await createSandbox('urlsecret');
    });
    after(async () => sb?.cleanup());

    it('a command failing against an unreachable or refusing ClickHouse names the URL without them', async function () {
      this.timeout(120_000);
      const dead = await freePort();
      for (const port of [dead, config.clickhouse.httpPort]) {
        const r = tally({ ...withoutPassword(sb.env), CLICKHOUSE_URL: `http://u:${secret}@127.0.0.1:${port}` }, 'tokens', 'list');
        assert.equal(r.code, 1, r.out);
        assert.ok(!r.out.includes(secret), r.out);
        assert.match(r.out, new RegExp(`127\\.0\\.0\\.1:${port}`));
        if (port !== dead) assert.match(r.out, REFUSED);
      }
    });

    it('the api role, with ClickHouse unreachable and debug logs on, never prints them', async function () {
      this.timeout(120_000);
      const port = await freePort();
      const dead = await freePort();
      const env = { ...sb.env, TALLY_HTTP_PORT: String(port), LOG_LEVEL: 'debug', CLICKHOUSE_URL: `http://tally:${secret}@127.0.0.1:${dead}` };
      const api = new RoleProcess('api', env, ['--no-web-build']);
      try {
        const base = `http://127.0.0.1:${port}`;
        await eventually('tally api to answer /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60_000, 200);
        assert.equal((await fetch(`${base}/readyz`)).status, 503);
        const lookup = await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${generateToken().token}` } });
        assert.equal(lookup.status, 503, 'the token lookup failed on ClickHouse');
        await eventually('the failure logged', async () => /api\.unavailable|clickhouse/i.test(api.log()), 10_000, 100);
      } finally {
        await api.stop();
      }
      const out = api.log();
      assert.ok(!out.includes(secret), out);
    });
  });
});

describe('local stack: a ClickHouse data dir from before passwords', function () {
  // A private ClickHouse on its own ports, so the shared one keeps serving the other tests.
  const dir = path.join(os.tmpdir(), `tally-stack-auth-${crypto.randomBytes(4).toString('hex')}`);
  let lc: LocalClickHouse | undefined;
  after(async function () {
    this.timeout(60_000);
    await lc?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('restarts reuse the password; a stack without a password file gets one and keeps its data', async function () {
    this.timeout(180_000);
    if (loadConfig().clickhouse.external) this.skip();
    const env = {
      ...withoutPassword(process.env), CLICKHOUSE_URL: undefined, TALLY_STACK_DIR: dir,
      TALLY_CLICKHOUSE_HTTP_PORT: String(await freePort()), TALLY_CLICKHOUSE_TCP_PORT: String(await freePort()),
    };
    const log = () => undefined;
    const start = async () => {
      const config = loadConfig(env);
      lc = new LocalClickHouse(config);
      await lc.start(log);
      return config;
    };

    const first = await start();
    const pw1 = first.clickhouse.password;
    assert.notEqual(pw1, '');
    let ch = createClickHouse(first, { log: 'off' });
    await ch.command({ query: 'CREATE TABLE default.kept (n UInt32) ENGINE = MergeTree ORDER BY n' });
    await ch.command({ query: 'INSERT INTO default.kept VALUES (1), (2), (3)' });
    await ch.close();
    await lc!.stop();

    const second = await start();
    assert.equal(second.clickhouse.password, pw1, 'a restart reuses the password');
    await lc!.stop();

    // What a .stack from before this change looks like: data, no password file.
    fs.rmSync(passwordFile(dir));
    const third = await start();
    const pw3 = third.clickhouse.password;
    assert.notEqual(pw3, pw1);
    assert.equal(fs.statSync(passwordFile(dir)).mode & 0o777, 0o600);
    ch = createClickHouse(third, { log: 'off' });
    assert.deepEqual(await queryRows(ch, 'SELECT sum(n) AS s FROM default.kept'), [{ s: '6' }]);
    await ch.close();
    assert.equal((await httpQuery(third.clickhouse.url, 'SELECT 1', { user: 'default', password: pw1 })).status, 401, 'the old password is gone');
    assert.equal((await httpQuery(third.clickhouse.url, 'SELECT 1')).status, 401);
  });
});
