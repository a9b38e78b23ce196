/**
 * k6 for the load tests (`npm run load`): built once with `go install go.k6.io/k6@<pinned>` into
 * the cache (GOBIN = <cacheDir>/k6/<version>), then reused. Idempotent: a finished build is marked
 * with `.complete` next to the binary; a half-finished one is rebuilt.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { StackError } from '../errors/index.js';
import { commandExists } from './processes.js';

/** The pinned k6 release (builds with Go 1.26 here; v1.x is the current major). */
export const K6_VERSION = 'v1.8.1';

/** Where Go may be when it is not on PATH. */
const GO_CANDIDATES = ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'];

function findGo(): string | undefined {
  if (process.env.GO && fs.existsSync(process.env.GO)) return process.env.GO;
  if (commandExists('go')) return 'go';
  return GO_CANDIDATES.find((p) => fs.existsSync(p));
}

/**
 * The path of a k6 binary: K6_BIN if set, else the cached build of K6_VERSION (built now if
 * missing; takes minutes the first time, the Go module proxy must be reachable).
 */
export async function ensureK6(cacheDir: string, log: (msg: string) => void, version = K6_VERSION): Promise<string> {
  if (process.env.K6_BIN) {
    if (!fs.existsSync(process.env.K6_BIN)) throw new StackError(`K6_BIN=${process.env.K6_BIN} does not exist`);
    return process.env.K6_BIN;
  }
  const dir = path.join(cacheDir, 'k6', version);
  const bin = path.join(dir, 'k6');
  if (fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(bin)) return bin;
  const go = findGo();
  if (go === undefined) {
    throw new StackError(`k6 is not installed and Go is missing: install Go 1.24+ (https://go.dev/dl/, or apt-get install golang) `
      + `so that tally can run \`go install go.k6.io/k6@${version}\`, or set K6_BIN to an existing k6 binary`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  log(`building k6 ${version} with ${go} into ${dir} (one time, a few minutes)`);
  const started = Date.now();
  const tick = setInterval(() => log(`  still building k6 … ${Math.round((Date.now() - started) / 1000)} s`), 15_000);
  let output = '';
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(go, ['install', `go.k6.io/k6@${version}`], {
        env: { ...process.env, GOBIN: dir, GOFLAGS: '-mod=mod', CGO_ENABLED: process.env.CGO_ENABLED ?? '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const keep = (b: Buffer) => { output = (output + b.toString()).slice(-8000); };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      child.on('error', reject);
      child.on('exit', (c) => resolve(c));
    });
    if (code !== 0 || !fs.existsSync(bin)) {
      throw new StackError(`go install go.k6.io/k6@${version} failed (exit ${code}):\n${output.trim().slice(-3000)}`);
    }
  } finally {
    clearInterval(tick);
  }
  fs.writeFileSync(path.join(dir, '.complete'), new Date().toISOString());
  log(`k6 ${version} built in ${Math.round((Date.now() - started) / 1000)} s: ${bin}`);
  return bin;
}
