import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { spawnTally, stopChild } from './role-process.js';

export interface RoleSpec {
  name: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** A finite job run again each time it ends (the demo traffic), rather than a service restarted on failure. */
  repeat?: boolean;
}

/**
 * Runs tally roles as child processes for `tally start`: prefixes their output with the role
 * name, restarts a role that dies (as a container orchestrator would), and on stop sends SIGTERM
 * so each finishes its current transaction.
 */
export class RoleSupervisor {
  private readonly children = new Map<string, ChildProcess>();
  private stopping = false;

  constructor(private readonly out: (line: string) => void) {}

  start(spec: RoleSpec): void {
    const child = spawnTally(spec.args, { ...process.env, ...spec.env }, 'pipe');
    this.children.set(spec.name, child);
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on('line', (line) => this.out(`${spec.name.padEnd(10)} | ${line}`));
    }
    child.on('exit', (code, signal) => {
      this.children.delete(spec.name);
      if (this.stopping) return;
      if (spec.repeat && code === 0) return this.start(spec);
      this.out(`${spec.name.padEnd(10)} | exited (${signal ?? code}); restarting in 2 s`);
      setTimeout(() => !this.stopping && this.start(spec), 2000);
    });
  }

  async stop(timeoutMs = 30_000): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.children.values()].map((child) => stopChild(child, timeoutMs)));
  }
}
