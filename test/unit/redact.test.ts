import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { splitUserinfo } from '../../server/src/config/clickhouse-connection.js';
import { loadConfig } from '../../server/src/config/index.js';
import { ConfigError } from '../../server/src/errors/index.js';
import { createLogger, redactUrl } from '../../server/src/observability/index.js';

describe('redactUrl', () => {
  it('replaces the userinfo of a URL and keeps the rest', () => {
    assert.equal(redactUrl('http://u:secret@127.0.0.1:8123'), 'http://***@127.0.0.1:8123');
    assert.equal(redactUrl('https://user:p%40ss@ch.example.com:8443/db?x=1'), 'https://***@ch.example.com:8443/db?x=1');
    assert.equal(redactUrl('http://onlyuser@host/'), 'http://***@host/');
    assert.equal(redactUrl('http://:pw@host'), 'http://***@host');
  });

  it('takes the userinfo to the last @ of the authority, as URL parsing does', () => {
    assert.equal(redactUrl('http://u:p@ss@host:1/x'), 'http://***@host:1/x');
    assert.equal(new URL('http://u:p@ss@host:1/x').host, 'host:1');
  });

  it('redacts every URL inside a longer text, and leaves an @ outside the authority alone', () => {
    assert.equal(
      redactUrl('connect to http://a:b@h1:1 failed; fallback "https://c:d@h2/p" refused'),
      'connect to http://***@h1:1 failed; fallback "https://***@h2/p" refused',
    );
    assert.equal(redactUrl('http://host:8123/?user=a@b mail me@example.com'), 'http://host:8123/?user=a@b mail me@example.com');
    assert.equal(redactUrl('no url here'), 'no url here');
    assert.equal(redactUrl('http://127.0.0.1:18123'), 'http://127.0.0.1:18123');
  });
});

describe('ClickHouse credentials in CLICKHOUSE_URL', () => {
  it('splitUserinfo takes user and password out of the URL, percent-decoded', () => {
    assert.deepEqual(splitUserinfo('http://u:secret@127.0.0.1:8123'), { url: 'http://127.0.0.1:8123', user: 'u', password: 'secret' });
    assert.deepEqual(splitUserinfo('https://us%20er:p%40ss%2Fw@h:1/db?a=b'), { url: 'https://h:1/db?a=b', user: 'us er', password: 'p@ss/w' });
    assert.deepEqual(splitUserinfo('http://u:p@ss@h'), { url: 'http://h', user: 'u', password: 'p@ss' });
    assert.deepEqual(splitUserinfo('http://onlyuser@h:1'), { url: 'http://h:1', user: 'onlyuser', password: undefined });
    assert.deepEqual(splitUserinfo('http://h:1/?q=a@b'), { url: 'http://h:1/?q=a@b', user: undefined, password: undefined });
    assert.deepEqual(splitUserinfo('http://h:1'), { url: 'http://h:1' });
  });

  it('loadConfig keeps the URL free of secrets; its userinfo wins over CLICKHOUSE_USER/PASSWORD', () => {
    const c = loadConfig({ CLICKHOUSE_URL: 'http://u:secret@127.0.0.1:8123', CLICKHOUSE_USER: 'other', CLICKHOUSE_PASSWORD: 'other-pw' });
    assert.equal(c.clickhouse.url, 'http://127.0.0.1:8123');
    assert.equal(c.clickhouse.user, 'u');
    assert.equal(c.clickhouse.password, 'secret');
    assert.equal(c.clickhouse.external, true);
    assert.equal(c.clickhouse.passwordFile, undefined);
    const plain = loadConfig({ CLICKHOUSE_URL: 'http://ch:8123', CLICKHOUSE_USER: 'tally', CLICKHOUSE_PASSWORD: 'pw' });
    assert.deepEqual([plain.clickhouse.url, plain.clickhouse.user, plain.clickhouse.password], ['http://ch:8123', 'tally', 'pw']);
  });

  it('an invalid CLICKHOUSE_URL or a bad value never shows the secret in the error', () => {
    for (const url of ['http://u:s3cret-x@host:notaport', 'http://u:s3cret-x/y@host', 'not a url u:s3cret-x@host']) {
      assert.throws(() => loadConfig({ CLICKHOUSE_URL: url }), (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /CLICKHOUSE_URL=/);
        assert.doesNotMatch(err.message, /s3cret/, err.message);
        return true;
      });
    }
  });
});

describe('createLogger keeps secrets out of log lines', () => {
  function capture(): { lines: () => string; stream: Writable } {
    let text = '';
    return { lines: () => text, stream: new Writable({ write(chunk: Buffer, _enc, done) { text += chunk.toString(); done(); } }) };
  }

  it('censors password/authorization fields and redacts URL userinfo in fields and messages', () => {
    const out = capture();
    const log = createLogger('test', 'info', out.stream);
    log.info({ password: 's3cret-1', headers: { authorization: 'Bearer s3cret-2' }, clickhouse: { password: 's3cret-3', url: 'http://a:s3cret-4@h' } }, 'hello');
    log.warn({ err: 'connect http://u:s3cret-5@127.0.0.1:1 refused' }, 'at http://u:s3cret-6@h:1/x');
    log.info('plain message http://u:s3cret-7@h');
    const text = out.lines();
    assert.doesNotMatch(text, /s3cret/, text);
    assert.match(text, /"password":"\*\*\*"/);
    assert.match(text, /"authorization":"\*\*\*"/);
    assert.match(text, /http:\/\/\*\*\*@127\.0\.0\.1:1 refused/);
    assert.match(text, /at http:\/\/\*\*\*@h:1\/x/);
    assert.match(text, /plain message http:\/\/\*\*\*@h/);
  });
});
