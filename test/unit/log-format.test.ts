import assert from 'node:assert/strict';
import { createLogger, logColors, logFormat, prettyDestination } from '../../server/src/observability/index.js';
import { roleLogEnv } from '../../server/src/cli/start-command.js';

describe('log format', () => {
  it('LOG_FORMAT=json|pretty decides; auto or unset: pretty on a terminal only', () => {
    assert.equal(logFormat({}, true), 'pretty');
    assert.equal(logFormat({}, false), 'json');
    assert.equal(logFormat({ LOG_FORMAT: 'auto' }, true), 'pretty');
    assert.equal(logFormat({ LOG_FORMAT: 'auto' }, false), 'json');
    assert.equal(logFormat({ LOG_FORMAT: 'json' }, true), 'json');
    assert.equal(logFormat({ LOG_FORMAT: 'pretty' }, false), 'pretty');
  });

  it('colours on a terminal unless NO_COLOR; FORCE_COLOR forces them elsewhere', () => {
    assert.equal(logColors({}, true), true);
    assert.equal(logColors({}, false), false);
    assert.equal(logColors({ NO_COLOR: '1' }, true), false);
    assert.equal(logColors({ TERM: 'dumb' }, true), false);
    assert.equal(logColors({ FORCE_COLOR: '1' }, false), true);
    assert.equal(logColors({ FORCE_COLOR: '0' }, true), false);
  });

  it('pretty lines are readable, one per call, and keep secrets out as JSON lines do', () => {
    let text = '';
    const log = createLogger('test', 'info', prettyDestination({ write: (s: string) => { text += s; } }, false));
    log.info({ metricsPort: 41234 }, 'role.metrics_listening');
    log.info({ password: 's3cret-1', headers: { authorization: 'Bearer s3cret-2' }, clickhouse: { password: 's3cret-3', url: 'http://a:s3cret-4@h' } }, 'hello');
    log.warn({ err: 'connect http://u:s3cret-5@127.0.0.1:1 refused' }, 'at http://u:s3cret-6@h:1/x');
    log.info('plain message http://u:s3cret-7@h');
    // One line per call; an `err` field gets a line of its own under its message.
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 5, text);
    assert.match(lines[0], /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: role\.metrics_listening \{"metricsPort":41234\}$/);
    assert.doesNotMatch(text, /s3cret/, text);
    assert.doesNotMatch(text, /"role"|"pid"|\{"level"/, text);
    assert.match(lines[1], /"password":"\*\*\*"/);
    assert.match(lines[1], /"authorization":"\*\*\*"/);
    assert.match(lines[1], /"url":"http:\/\/\*\*\*@h"/);
    assert.match(lines[2], /WARN: at http:\/\/\*\*\*@h:1\/x/);
    assert.match(lines[3], /^ +err: "connect http:\/\/\*\*\*@127\.0\.0\.1:1 refused"$/);
    assert.match(lines[4], /INFO: plain message http:\/\/\*\*\*@h$/);
  });
});

describe('tally start asks its roles for the log format of the terminal', () => {
  it('pretty (and coloured) roles when its output is a terminal and LOG_FORMAT is auto', () => {
    assert.deepEqual(roleLogEnv({}, true), { LOG_FORMAT: 'pretty', FORCE_COLOR: '1' });
    assert.deepEqual(roleLogEnv({ LOG_FORMAT: 'auto' }, true), { LOG_FORMAT: 'pretty', FORCE_COLOR: '1' });
    assert.deepEqual(roleLogEnv({ NO_COLOR: '1' }, true), { LOG_FORMAT: 'pretty' });
  });

  it('nothing changed when piped or when LOG_FORMAT is explicit: the roles inherit it', () => {
    assert.deepEqual(roleLogEnv({}, false), {});
    assert.deepEqual(roleLogEnv({ LOG_FORMAT: 'json' }, true), {});
    assert.deepEqual(roleLogEnv({ LOG_FORMAT: 'pretty' }, false), {});
  });
});
