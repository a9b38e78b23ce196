/**
 * What the JVM peers of `npm run bench` (Kafka Streams, Flink) share: the cached Maven build of a
 * peer's runnable jar, the peer process with its JSON-line stdout, and the topic and consumer-group
 * housekeeping around a run. Each peer is a Maven project in bench/peers/<name>/ that also compiles
 * bench/peers/jvm-shared/ (the impression parser and CLI helpers both use).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Kafka from 'node-rdkafka';
import { loadConfig } from '../../server/src/config/index.js';
import { kafkaError } from '../../server/src/errors/index.js';
import { commandExists, stopChild } from '../../server/src/stack/index.js';
import { readTopicToEnd } from '../../server/src/tools/index.js';

export type Log = (msg: string) => void;

const peersDir = path.dirname(fileURLToPath(import.meta.url));
const SHARED = 'jvm-shared';
const ERR_TOPIC_ALREADY_EXISTS = 36;

// ── build ───────────────────────────────────────────────────────────────────────────────────────

/** A peer's Maven project: bench/peers/<dir>/pom.xml building target/<jar>. */
export interface JvmPeerProject {
  /** Folder under bench/peers/. */
  dir: string;
  /** Name of the shaded jar (the pom's finalName + .jar). */
  jar: string;
  /** For the progress lines: "the Flink peer". */
  title: string;
  /** For the first build's progress line: what it downloads. */
  downloads: string;
}

/** The peer's pom.xml, its src/ and the shared src/, paths relative to bench/peers, sorted. */
function sourceFiles(project: JvmPeerProject): string[] {
  const out = [path.join(project.dir, 'pom.xml')];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(peersDir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) out.push(r);
    }
  };
  walk(path.join(project.dir, 'src'));
  walk(path.join(SHARED, 'src'));
  return out.sort();
}

function sourceHash(files: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(fs.readFileSync(path.join(peersDir, f)));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

const builds = new Map<string, Promise<string>>();

/**
 * The runnable (shaded) jar of a peer: `<cacheDir>/bench/<dir>-<hash>/<jar>`, cacheDir as in the
 * stack (TALLY_CACHE_DIR, default ~/.cache/tally), hash over the files the build reads. Runs
 * `mvn -q -B package` only when no finished build of these sources exists (a copy of the sources
 * is built under the cache, so the repo gets no target/). Idempotent, and safe to call
 * concurrently: one build per process, and a build finished by another process is reused.
 */
export function buildJvmPeer(project: JvmPeerProject, log: Log): Promise<string> {
  const files = sourceFiles(project);
  const hash = sourceHash(files);
  const id = `${project.dir}-${hash}`;
  let p = builds.get(id);
  if (!p) {
    p = build(project, files, id, log);
    builds.set(id, p);
    p.catch(() => builds.delete(id));
  }
  return p;
}

async function build(project: JvmPeerProject, files: string[], id: string, log: Log): Promise<string> {
  const dir = path.join(loadConfig().cacheDir, 'bench', id);
  const jar = path.join(dir, project.jar);
  if (fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(jar)) return jar;
  if (!commandExists('java')) throw new Error('java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)');
  if (!commandExists('mvn')) throw new Error(`mvn not found: install Maven (Debian: apt-get install maven) to build ${project.title}`);

  const tmp = `${dir}.tmp-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  const work = path.join(tmp, 'project');
  fs.mkdirSync(work, { recursive: true });
  try {
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(work, f)), { recursive: true });
      fs.copyFileSync(path.join(peersDir, f), path.join(work, f));
    }
    log(`building ${project.title} (mvn package, ${id}) into ${dir}; the first build downloads ${project.downloads} from Maven Central`);
    const started = Date.now();
    const tick = setInterval(() => log(`  still building ${project.title} … ${Math.round((Date.now() - started) / 1000)} s`), 15_000);
    let output = '';
    let code: number | null;
    try {
      code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn('mvn', ['-q', '-B', '-Dstyle.color=never', 'package'], { cwd: path.join(work, project.dir), stdio: ['ignore', 'pipe', 'pipe'] });
        const keep = (b: Buffer) => { output = (output + b.toString()).slice(-8000); };
        child.stdout.on('data', keep);
        child.stderr.on('data', keep);
        child.on('error', reject);
        child.on('exit', (c) => resolve(c));
      });
    } finally {
      clearInterval(tick);
    }
    const built = path.join(work, project.dir, 'target', project.jar);
    if (code !== 0 || !fs.existsSync(built)) throw new Error(`mvn package of ${project.title} failed (exit ${code}):\n${output.trim().slice(-3000)}`);
    fs.renameSync(built, path.join(tmp, project.jar));
    fs.rmSync(work, { recursive: true, force: true });
    fs.writeFileSync(path.join(tmp, '.complete'), new Date().toISOString());
    log(`${project.title} built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${jar}`);
    if (fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(jar)) return jar; // another process won
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    return jar;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ── run ─────────────────────────────────────────────────────────────────────────────────────────

/** One JSON line of a peer's stdout (see its Main.java). */
export interface PeerLine {
  type: string;
  [k: string]: unknown;
}

/** The running peer: its stdout lines parsed, stderr kept for errors, exit observed. */
export class PeerProcess<S extends object> {
  readonly child: ChildProcess;
  /** The latest {"type":"summary"} line and when it arrived. */
  lastSummary: (S & { at: number }) | undefined;
  /** ms from spawn to the first line saying the app runs (Kafka Streams' state, Flink's job status RUNNING). */
  runningAfterMs: number | undefined;
  readonly startedAt = Date.now();
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stderr = '';
  private readonly exitPromise: Promise<void>;

  /** `name` prefixes the lines it logs: summaries only when final, every other line as it comes. */
  constructor(name: string, jar: string, jvmArgs: string[], args: string[], log: Log) {
    this.child = spawn('java', [...jvmArgs, '-jar', jar, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve();
      });
      this.child.on('error', (err) => {
        this.stderr += `\n${err.message}`;
        this.exited ??= { code: null, signal: null };
        resolve();
      });
    });
    let buf = '';
    this.child.stdout?.on('data', (b: Buffer) => {
      buf += b.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (text === '') continue;
        let line: PeerLine;
        try {
          line = JSON.parse(text) as PeerLine;
        } catch {
          log(`  [${name}] ${text}`);
          continue;
        }
        if (line.type === 'summary') {
          this.lastSummary = { ...(line as unknown as S), at: Date.now() };
          if (line.final === true) log(`  [${name}] ${text}`);
          continue;
        }
        if ((line.to === 'RUNNING' || line.status === 'RUNNING') && this.runningAfterMs === undefined) this.runningAfterMs = Date.now() - this.startedAt;
        log(`  [${name}] ${text}`);
      }
    });
    this.child.stderr?.on('data', (b: Buffer) => { this.stderr = (this.stderr + b.toString()).slice(-8000); });
  }

  stderrTail(): string {
    return this.stderr.trim().split('\n').slice(-25).join('\n');
  }

  /** SIGTERM (the app's shutdown hook closes it), SIGKILL after graceMs. True if it exited by itself. */
  async stop(graceMs: number): Promise<boolean> {
    if (this.exited) return true; // exited, or never started (an 'error' instead of an 'exit')
    await stopChild(this.child, graceMs);
    await this.exitPromise;
    return this.child.signalCode !== 'SIGKILL';
  }
}

/** Creates a topic that must not exist yet (a peer's fresh output topic). */
export async function createFreshTopic(brokers: string, spec: Kafka.NewTopic): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, log_level: 0 });
  try {
    await new Promise<void>((resolve, reject) => admin.createTopic(spec, 15_000, (err) => {
      if (!err) resolve();
      else if (err.code === ERR_TOPIC_ALREADY_EXISTS) reject(new Error(`topic ${spec.topic} already exists: a peer needs a fresh output topic (a leftover of an earlier run?)`));
      else reject(kafkaError(`create topic ${spec.topic}`, err));
    }));
  } finally {
    admin.disconnect();
  }
}

/** A peer's count rows (JSON `{"type":"window",…}` values): the latest per key, summed. */
export interface OutputCounts {
  counted: number;
  duplicates: number;
  /** Keys holding a window row at the end. */
  rows: number;
  /** Records of another type (the Kafka Streams peer's watermarks). */
  others: number;
}

/** Reads a peer's output topic to its end, read_committed: the latest row per key wins, tombstones delete. */
export async function readOutputCounts(brokers: string, topic: string): Promise<OutputCounts> {
  const rows = new Map<string, { impressions: number; duplicates: number }>();
  let others = 0;
  await readTopicToEnd(brokers, topic, (m) => {
    const key = m.key?.toString() ?? '';
    if (m.value === null || m.value === undefined) {
      rows.delete(key);
      return;
    }
    const rec = JSON.parse(m.value.toString()) as { type: string; impressions?: number; duplicates?: number };
    if (rec.type === 'window') rows.set(key, { impressions: rec.impressions ?? 0, duplicates: rec.duplicates ?? 0 });
    else others++;
  }, { timeoutMs: 60_000, isolation: 'read_committed' });
  let counted = 0;
  let duplicates = 0;
  for (const r of rows.values()) {
    counted += r.impressions;
    duplicates += r.duplicates;
  }
  return { counted, duplicates, rows: rows.size, others };
}

/** node-rdkafka's AdminClient cannot delete groups; the peers' jars can (`--delete-group true`, Admin.deleteConsumerGroups). */
export async function deleteGroupWithJar(jar: string, args: string[], log: Log): Promise<void> {
  const child = spawn('java', ['-Xmx256m', '-jar', jar, ...args, '--delete-group', 'true'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', (c) => resolve(c));
    child.on('error', () => resolve(null));
  });
  if (code !== 0) log(`could not delete consumer group (${args.join(' ')}): ${out.trim().slice(-500)}`);
}
