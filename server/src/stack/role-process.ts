/**
 * A tally role (`aggregator`, `sink`, `api`, …) as a child process of this one: how `tally start`
 * (RoleSupervisor) and the tests, bench and load tests (test/kit) run the CLI, and how they stop it.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { repoRoot } from '../config/index.js';

/**
 * Runs `tally <args>` (server/src/cli.ts through tsx) from the repository root. `output` is where
 * its stdout and stderr go: 'pipe' to read them here, or an open file descriptor to append to.
 * `nodeArgs` go to node itself (`--cpu-prof`, which NODE_OPTIONS does not take).
 */
export function spawnTally(args: string[], env: NodeJS.ProcessEnv, output: 'pipe', nodeArgs?: string[]): ChildProcessByStdio<null, Readable, Readable>;
export function spawnTally(args: string[], env: NodeJS.ProcessEnv, output: number, nodeArgs?: string[]): ChildProcess;
export function spawnTally(args: string[], env: NodeJS.ProcessEnv, output: 'pipe' | number, nodeArgs: string[] = []): ChildProcess {
  return spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(repoRoot, 'server/src/cli.ts'), ...args], {
    cwd: repoRoot, env, stdio: ['ignore', output, output],
  });
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves with the child's exit code (null when a signal ended it), at once if it has already exited. */
export function exitOf(child: ChildProcess): Promise<number | null> {
  if (!isRunning(child)) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/**
 * SIGTERM, so the child can finish cleanly (a tally role: its current transaction); SIGKILL if it
 * is still running after timeoutMs. Resolves with its exit code (null if a signal ended it) once it has exited.
 */
export async function stopChild(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (!isRunning(child)) return child.exitCode;
  const exited = exitOf(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}
