/** A tally role running as a real child process, its output in a log file under test-artifacts/. */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../server/src/config/index.js';
import { exitOf, isRunning, spawnTally, stopChild } from '../../server/src/stack/index.js';

/** Where the roles' logs (and the tests' screenshots and files) go. */
export const artifactsDir = path.join(repoRoot, 'test-artifacts');

/** A tally role (`aggregator`, `sink`, …) running as a real child process. */
export class RoleProcess {
  readonly child: ChildProcess;
  readonly logFile: string;

  /** `nodeArgs`: options for node itself (e.g. `--cpu-prof`). */
  constructor(readonly role: string, env: NodeJS.ProcessEnv, args: string[] = [], nodeArgs: string[] = []) {
    fs.mkdirSync(artifactsDir, { recursive: true });
    this.logFile = path.join(artifactsDir, `${env.TALLY_TOPIC_PREFIX ?? ''}${role}-${Date.now()}.log`);
    const out = fs.openSync(this.logFile, 'a');
    this.child = spawnTally([role, ...args], env, out, nodeArgs);
    fs.closeSync(out);
  }

  get alive(): boolean {
    return isRunning(this.child);
  }

  /** SIGKILL: no cleanup, no final commit; what a crash looks like. */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await exitOf(this.child);
  }

  /** SIGTERM and wait for a clean exit (SIGKILL after timeoutMs); returns the exit code. */
  stop(timeoutMs = 30_000): Promise<number | null> {
    return stopChild(this.child, timeoutMs);
  }

  log(): string {
    return fs.readFileSync(this.logFile, 'utf8');
  }
}

/**
 * For a wait that is pointless once a role has died: the first of `roles` that exited, with its
 * exit code and the tail of its log; undefined while all of them run.
 */
export function roleExited(roles: readonly RoleProcess[]): string | undefined {
  const dead = roles.find((r) => !r.alive);
  if (dead === undefined) return undefined;
  return `tally ${dead.role} exited (code ${dead.child.exitCode}); log ${dead.logFile}:\n${dead.log().split('\n').slice(-15).join('\n')}`;
}
