import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { StackError } from '../errors/index.js';

/** Starts a long-running server detached from this process, its output appended to logFile. */
export function startDetached(command: string, args: string[], opts: { logFile: string; pidFile: string; cwd: string; env?: NodeJS.ProcessEnv }): number {
  const out = fs.openSync(opts.logFile, 'a');
  const child = spawn(command, args, { cwd: opts.cwd, detached: true, stdio: ['ignore', out, out], env: opts.env ?? process.env });
  fs.closeSync(out);
  if (child.pid === undefined) throw new StackError(`could not start ${command}`);
  child.unref();
  fs.writeFileSync(opts.pidFile, String(child.pid));
  return child.pid;
}

/** The pid in pidFile if that process is alive, else undefined. */
export function runningPid(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  // A zombie (exited, not yet reaped) still answers kill(0); /proc tells the truth.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z/.test(stat)) return undefined;
  } catch {
    /* not Linux: trust kill(0) */
  }
  return pid;
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Resolves once the process is gone. */
export async function stopProcess(pidFile: string, graceMs: number): Promise<boolean> {
  const pid = runningPid(pidFile);
  if (pid === undefined) {
    fs.rmSync(pidFile, { force: true });
    return false;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (runningPid(pidFile) !== undefined && Date.now() < deadline) await sleep(100);
  if (runningPid(pidFile) !== undefined) {
    process.kill(pid, 'SIGKILL');
    while (runningPid(pidFile) !== undefined) await sleep(50);
  }
  fs.rmSync(pidFile, { force: true });
  return true;
}

/** Polls `probe` until it returns true, or throws after timeoutMs with `what` and a hint. */
export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, hint: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new StackError(`${what} did not become ready within ${Math.round(timeoutMs / 1000)} s; ${hint}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Installs a Debian package if `binary` is not on PATH (idempotent; waits up to 5 min for another apt run to finish); clear error without apt or root. */
export function ensureDebianPackage(pkg: string, binary: string, log: (msg: string) => void): void {
  if (commandExists(binary)) return;
  if (!commandExists('apt-get')) {
    throw new StackError(`${binary} is missing and apt-get is not available: install the '${pkg}' package (or point tally at an existing server with the env vars in the README)`);
  }
  log(`installing Debian package ${pkg} (needs root; one time)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '-qq', pkg], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update', '-qq'], { stdio: 'ignore', env });
    r = install();
  }
  if (r.status !== 0 || !commandExists(binary)) {
    throw new StackError(`could not install ${pkg} with apt-get (run as root, or install it yourself): ${r.stderr?.toString().trim().slice(-400)}`);
  }
}

/** Tail of a log file, for `tally stack logs` and for error messages. */
export function tail(file: string, lines: number): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '';
  }
}
