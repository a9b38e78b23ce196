/**
 * A current ClickHouse next to the local 18.16 server, for running tally's SQL on both: chdb-core
 * (the ClickHouse engine embedded in a Python module, from PyPI) in a venv under the cache, served
 * over ClickHouse's HTTP interface by chdb-http-server.py, which only carries bytes: every query
 * runs in the engine. Installed once (a finished venv is marked with `.complete`; a half-finished
 * one is installed again), started per use on a free loopback port with a fresh data directory and
 * password, bounded in memory and query time, and gone when its user stops it or exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StackError } from '../errors/index.js';
import { ensureDebianPackage } from './processes.js';

/** The pinned chdb-core release: ClickHouse 26.9 (`SELECT version()` says 26.9.2.1). */
export const CHDB_CORE_VERSION = '26.9.0';

const serverScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'chdb-http-server.py');

type Log = (msg: string) => void;

/**
 * The venv's Python with chdb-core installed, under <cacheDir>/chdb-core-<version>. The first call
 * downloads the wheel from PyPI (~180 MB, ~560 MB installed; seconds to a minute); later calls
 * return at once.
 */
export async function ensureCurrentClickHouse(cacheDir: string, log: Log): Promise<string> {
  const dir = path.join(cacheDir, `chdb-core-${CHDB_CORE_VERSION}`);
  const python = path.join(dir, 'venv', 'bin', 'python');
  if (fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(python)) return python;
  ensureDebianPackage('python3', 'python3', log);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  log(`installing a current ClickHouse: chdb-core ${CHDB_CORE_VERSION} from PyPI into ${dir} (one time, a ~180 MB download)`);
  const started = Date.now();
  const tick = setInterval(() => log(`  still installing chdb-core … ${Math.round((Date.now() - started) / 1000)} s`), 15_000);
  try {
    await run('python3', ['-m', 'venv', path.join(dir, 'venv')], log, 'python3 -m venv (Debian: apt-get install python3-venv)');
    // No dependencies: pandas and pyarrow serve chdb's DataFrame results, which the server never asks for.
    await run(python, ['-m', 'pip', 'install', '--no-deps', '--no-input', '--disable-pip-version-check', '--progress-bar', 'off',
      `chdb-core==${CHDB_CORE_VERSION}`], log, `pip install chdb-core==${CHDB_CORE_VERSION}`);
    await run(python, ['-c', 'import chdb'], log, 'import chdb');
  } finally {
    clearInterval(tick);
  }
  fs.writeFileSync(path.join(dir, '.complete'), new Date().toISOString());
  log(`chdb-core ${CHDB_CORE_VERSION} installed in ${Math.round((Date.now() - started) / 1000)} s`);
  return python;
}

/** Runs a command, its output lines passed to `log`; rejects naming `what` with the output's tail. */
async function run(command: string, args: string[], log: Log, what: string): Promise<void> {
  let tail = '';
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: pythonEnv() });
    const onData = (b: Buffer) => {
      tail = (tail + b.toString()).slice(-4000);
      for (const line of b.toString().split('\n')) if (line.trim() !== '') log(`  ${line.trim()}`);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new StackError(`${what} failed (exit ${code}):\n${tail.trim()}`);
}

/** The environment for the venv's Python: the user's site-packages left out, times in UTC like the local server. */
function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONNOUSERSITE: '1', TZ: 'UTC', ...extra };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  return env;
}

export interface CurrentClickHouseOptions {
  /** From ensureCurrentClickHouse. */
  python: string;
  /** Cap on the engine's memory (default 2 GB). */
  memoryBytes?: number;
  /** Cap on one query's time (default 120 s). */
  querySeconds?: number;
  /** How long the start may take (default 60 s). */
  startTimeoutMs?: number;
}

/** A running chdb-http-server: ClickHouse's HTTP interface on 127.0.0.1, user `default`, a fresh password and data directory. */
export class CurrentClickHouse {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dataDir: string,
    readonly url: string,
    readonly version: string,
    readonly password: string,
  ) {}

  static async start(opts: CurrentClickHouseOptions): Promise<CurrentClickHouse> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-chdb-'));
    const password = crypto.randomBytes(18).toString('base64url');
    // stdin stays open: when this process ends, however it ends, the server reads EOF and exits.
    const child = spawn(opts.python, [serverScript, '--data', dataDir,
      '--memory-bytes', String(opts.memoryBytes ?? 2_000_000_000), '--query-seconds', String(opts.querySeconds ?? 120)], {
      stdio: ['pipe', 'pipe', 'pipe'], env: pythonEnv({ TALLY_CHDB_PASSWORD: password }),
    });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4000); });
    try {
      const ready = await new Promise<{ port: number; version: string }>((resolve, reject) => {
        let stdout = '';
        const timer = setTimeout(() => reject(new StackError(`chdb-http-server did not start within ${opts.startTimeoutMs ?? 60_000} ms:\n${stderr}`)), opts.startTimeoutMs ?? 60_000);
        child.stdout?.on('data', (b: Buffer) => {
          stdout += b.toString();
          const nl = stdout.indexOf('\n');
          if (nl < 0) return;
          clearTimeout(timer);
          try {
            resolve(JSON.parse(stdout.slice(0, nl)) as { port: number; version: string });
          } catch {
            reject(new StackError(`chdb-http-server printed ${JSON.stringify(stdout.slice(0, 200))}, not its port`));
          }
        });
        child.on('error', (err) => { clearTimeout(timer); reject(err); });
        child.on('exit', (code) => { clearTimeout(timer); reject(new StackError(`chdb-http-server exited (code ${code}) at start:\n${stderr}`)); });
      });
      return new CurrentClickHouse(child, dataDir, `http://127.0.0.1:${ready.port}`, ready.version, password);
    } catch (err) {
      child.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** What a tally process needs to use this server (its own database still comes from TALLY_CLICKHOUSE_DATABASE). */
  get env(): Record<string, string> {
    return { CLICKHOUSE_URL: this.url, CLICKHOUSE_USER: 'default', CLICKHOUSE_PASSWORD: this.password };
  }

  /** SIGTERM (SIGKILL after 10 s), then the data directory is removed. */
  async stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
