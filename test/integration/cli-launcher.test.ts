import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// bin/tally as npm installs it: reached through symlinks, from anywhere. Needs no Kafka or ClickHouse.
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function run(command: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }) {
  const r = spawnSync(command, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, error: r.error };
}

function assertHelp(r: ReturnType<typeof run>): void {
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: tally \[options\] \[command\]/);
  assert.match(r.stdout, /\n {2}tokens +API bearer tokens/);
}

describe('bin/tally through symlinks', () => {
  let tmp: string;

  before(() => {
    // npm's global layout (`npm link`, `npm install -g`), all links relative:
    //   prefix/lib/node_modules/tally -> the checkout, prefix/bin/tally -> ../lib/node_modules/tally/bin/tally
    // and one more link to that link elsewhere; plus an absolute link (node_modules/.bin style).
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-launcher-'));
    fs.mkdirSync(path.join(tmp, 'prefix/lib/node_modules'), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'prefix/bin'));
    fs.mkdirSync(path.join(tmp, 'elsewhere'));
    fs.mkdirSync(path.join(tmp, 'abs'));
    fs.symlinkSync(path.relative(path.join(tmp, 'prefix/lib/node_modules'), repo), path.join(tmp, 'prefix/lib/node_modules/tally'));
    fs.symlinkSync('../lib/node_modules/tally/bin/tally', path.join(tmp, 'prefix/bin/tally'));
    fs.symlinkSync('../prefix/bin/tally', path.join(tmp, 'elsewhere/tally'));
    fs.symlinkSync(path.join(repo, 'bin/tally'), path.join(tmp, 'abs/tally'));
  });

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('--help through an absolute link, from another directory', () => {
    assertHelp(run(path.join(tmp, 'abs/tally'), ['--help'], { cwd: tmp }));
  });

  it('--help through a chain of relative links crossing a linked directory, by relative path and from PATH', () => {
    assertHelp(run('./tally', ['--help'], { cwd: path.join(tmp, 'elsewhere') }));
    assertHelp(run('tally', ['--help'], { cwd: os.tmpdir(), env: { PATH: `${path.join(tmp, 'prefix/bin')}${path.delimiter}${process.env.PATH ?? ''}` } }));
  });

  it('passes the arguments and the exit code through', () => {
    const r = run(path.join(tmp, 'elsewhere/tally'), ['no-such-command'], { cwd: tmp });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown command 'no-such-command'/);
    const config = run(path.join(tmp, 'elsewhere/tally'), ['config'], { cwd: tmp });
    assert.equal(config.status, 0, config.stderr);
    assert.match(config.stdout, /^LOG_FORMAT +auto /m);
  });

  it('run directly from the checkout', () => {
    assertHelp(run('./bin/tally', ['--help'], { cwd: repo }));
  });
});
