import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, passwordFile, readStackPassword } from '../../server/src/config/index.js';
import { ConfigError } from '../../server/src/errors/index.js';
import { ensureStackPassword, generatePassword, sha256Hex } from '../../server/src/stack/clickhouse-password.js';

describe('the local stack ClickHouse password file', () => {
  let dir: string;
  beforeEach(() => { dir = path.join(os.tmpdir(), `tally-pw-${crypto.randomBytes(4).toString('hex')}`); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const mode = (f: string) => fs.statSync(f).mode & 0o777;

  it('generates 32 random bytes as base64url, and hashes like users.xml expects', () => {
    const a = generatePassword();
    assert.match(a, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, generatePassword());
    assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('is created on first use with mode 0600 (whatever the umask), then reused', () => {
    const old = process.umask(0o000);
    try {
      const first = ensureStackPassword(dir);
      assert.equal(first.created, true);
      assert.equal(mode(passwordFile(dir)), 0o600);
      assert.equal(fs.readFileSync(passwordFile(dir), 'utf8'), `${first.password}\n`);
      const again = ensureStackPassword(dir);
      assert.deepEqual(again, { password: first.password, created: false });
      assert.equal(readStackPassword(dir), first.password);
      assert.deepEqual(fs.readdirSync(dir), ['clickhouse-password'], 'no temporary file left behind');
    } finally {
      process.umask(old);
    }
  });

  it('a file readable by others is set back to 0600; an empty one is replaced', () => {
    const { password } = ensureStackPassword(dir);
    fs.chmodSync(passwordFile(dir), 0o644);
    assert.equal(ensureStackPassword(dir).password, password);
    assert.equal(mode(passwordFile(dir)), 0o600);
    fs.writeFileSync(passwordFile(dir), '\n');
    assert.throws(() => readStackPassword(dir), ConfigError);
    const fresh = ensureStackPassword(dir);
    assert.equal(fresh.created, true);
    assert.notEqual(fresh.password, password);
  });

  it('readStackPassword: undefined while there is no file', () => {
    assert.equal(readStackPassword(dir), undefined);
  });

  describe('loadConfig with the local stack', () => {
    const env = () => ({ TALLY_STACK_DIR: dir });

    it('reads the password from the stack dir, also when the file appears after loading', () => {
      const config = loadConfig(env());
      assert.equal(config.clickhouse.external, false);
      assert.equal(config.clickhouse.passwordFile, passwordFile(dir));
      assert.equal(config.clickhouse.password, '', 'no file yet: no password');
      const { password } = ensureStackPassword(dir);
      assert.equal(config.clickhouse.password, password, 'read once the file exists');
      assert.equal(loadConfig(env()).clickhouse.password, password);
      assert.equal(loadConfig({ ...env(), CLICKHOUSE_PASSWORD: '' }).clickhouse.password, password, 'empty counts as unset');
    });

    it('CLICKHOUSE_PASSWORD set wins; CLICKHOUSE_URL set means no file is read', () => {
      ensureStackPassword(dir);
      const explicit = loadConfig({ ...env(), CLICKHOUSE_PASSWORD: 'mine' });
      assert.equal(explicit.clickhouse.password, 'mine');
      assert.equal(explicit.clickhouse.passwordFile, undefined);
      assert.equal(loadConfig({ ...env(), CLICKHOUSE_URL: 'http://127.0.0.1:8123' }).clickhouse.password, '');
    });
  });
});
