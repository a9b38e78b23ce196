/**
 * The integration tests' view of the real local stack: starts Kafka and ClickHouse on first use
 * (or uses KAFKA_BROKERS / CLICKHOUSE_URL), gives each test fresh topics and a fresh database,
 * runs tally roles as real child processes, and stops only what it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createClickHouse, identifier, migrate } from '../../server/src/clickhouse/index.js';
import { loadConfig, repoRoot, type TallyConfig } from '../../server/src/config/index.js';
import { deleteTopics, ensureTopics } from '../../server/src/kafka/index.js';
import { stackDown, stackUp } from '../../server/src/stack/index.js';

export const artifactsDir = path.join(repoRoot, 'test-artifacts');

let stackReady: Promise<{ startedKafka: boolean; startedClickHouse: boolean }> | undefined;

/** Brings the stack up once per mocha run. */
export async function useStack(): Promise<TallyConfig> {
  const config = loadConfig();
  stackReady ??= stackUp(config, (m) => process.stderr.write(`      [stack] ${m}\n`));
  await stackReady;
  return config;
}

export async function stopStartedStack(): Promise<void> {
  if (!stackReady) return;
  const started = await stackReady.catch(() => ({ startedKafka: false, startedClickHouse: false }));
  stackReady = undefined;
  if (process.env.TALLY_KEEP_STACK === '1') return;
  await stackDown(loadConfig(), (m) => process.stderr.write(`      [stack] ${m}\n`), { kafka: started.startedKafka, clickhouse: started.startedClickHouse });
}

export interface Sandbox {
  /** Environment for child processes: the base env plus this sandbox's topics and database. */
  env: NodeJS.ProcessEnv;
  config: TallyConfig;
  cleanup(): Promise<void>;
}

/**
 * Fresh topics (by prefix) and a fresh ClickHouse database for one test, migrated.
 * `overrides` are extra environment variables (window size, partitions, …).
 */
export async function createSandbox(name: string, overrides: Record<string, string> = {}): Promise<Sandbox> {
  await useStack();
  const id = `${name.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}_${crypto.randomBytes(3).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TALLY_TOPIC_PREFIX: `t-${id}.`,
    TALLY_CLICKHOUSE_DATABASE: `t_${id}`,
    // Tests read the roles' logs as JSON lines, whatever the shell exports.
    LOG_FORMAT: 'json',
    ...overrides,
  };
  const config = loadConfig(env);
  await ensureTopics(config);
  const ch = createClickHouse(config);
  try {
    await migrate(ch, config.clickhouse.database);
  } finally {
    await ch.close();
  }
  return {
    env,
    config,
    async cleanup() {
      if (process.env.TALLY_KEEP_SANDBOX === '1') return;
      // Only this sandbox's own topics: an input given by TALLY_IMPRESSIONS_TOPIC is shared.
      const own = Object.values(config.topics).filter((t) => t.startsWith(`t-${id}.`));
      await deleteTopics(config.kafka.brokers, own).catch(() => undefined);
      const c = createClickHouse(config);
      await c.command({ query: `DROP DATABASE IF EXISTS ${identifier(config.clickhouse.database)}` }).catch(() => undefined);
      await c.close();
    },
  };
}

/** A tally role (`aggregator`, `sink`, …) running as a real child process. */
export class RoleProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  private exited: Promise<number | null>;

  constructor(readonly role: string, env: NodeJS.ProcessEnv, args: string[] = []) {
    fs.mkdirSync(artifactsDir, { recursive: true });
    this.logFile = path.join(artifactsDir, `${env.TALLY_TOPIC_PREFIX ?? ''}${role}-${Date.now()}.log`);
    const out = fs.openSync(this.logFile, 'a');
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'server/src/cli.ts'), role, ...args], {
      cwd: repoRoot, env, stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL: no cleanup, no final commit; what a crash looks like. */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait for a clean exit; returns the exit code. */
  async stop(timeoutMs = 30_000): Promise<number | null> {
    if (!this.alive) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  log(): string {
    return fs.readFileSync(this.logFile, 'utf8');
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `probe` returns true; throws with `what` after timeoutMs. */
export async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A TCP port free on loopback right now (for a `tally api` under test). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}
