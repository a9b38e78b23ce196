/**
 * The Kafka Streams peer of `npm run bench` (issue 6): bench/peers/kafka-streams/, a minimal Kafka
 * Streams 4.1.1 app doing tally's windowed count with dedup under exactly_once_v2 — the reference
 * implementation of the approach tally takes. This module builds it (once, cached) and runs it
 * against a preloaded input topic, timed like the aggregator in bench/aggregator-bench.ts: from
 * process start until its consumer group has committed offsets at the end of every input partition.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Kafka from 'node-rdkafka';
import { loadConfig } from '../../server/src/config/index.js';
import { kafkaError } from '../../server/src/errors/index.js';
import { deleteTopics, fetchMetadata } from '../../server/src/kafka/index.js';
import { commandExists } from '../../server/src/stack/index.js';
import { stopChild } from '../../server/src/stack/index.js';
import { readTopicToEnd } from '../../server/src/tools/index.js';
import { sleep } from '../../test/kit/waiting.js';
import { type ContenderResult } from '../lib/contender-result.js';
import { watchGroup, type GroupProgress } from '../lib/group-progress.js';


export interface KafkaStreamsPeerOptions {
  brokers: string;
  inputTopic: string;
  partitions: number;
  events: number;
  windowMs: number;
  /** Created (compacted, `partitions` partitions) and deleted by the run, with `${outputTopic}-dlq`; must not exist. */
  outputTopic: string;
  log: (msg: string) => void;
}

type Log = (msg: string) => void;

const projectDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'kafka-streams');
const JAR_NAME = 'tally-kafka-streams-peer.jar';
/** The JVM's heap; RocksDB's memory (block cache, memtables) is off-heap on top of it. */
const JVM_ARGS = ['-Xms256m', '-Xmx1g', '-XX:+UseG1GC', '-Djava.awt.headless=true'];
const ERR_TOPIC_ALREADY_EXISTS = 36;


// ── build ───────────────────────────────────────────────────────────────────────────────────────

/** pom.xml and every file under src/, relative paths sorted: what the build depends on. */
function sourceFiles(): string[] {
  const out = ['pom.xml'];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(projectDir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) out.push(r);
    }
  };
  walk('src');
  return out.sort();
}

function sourceHash(files: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(fs.readFileSync(path.join(projectDir, f)));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

const builds = new Map<string, Promise<string>>();

/**
 * The runnable (shaded) jar of the peer: `<cacheDir>/bench/kafka-streams-<hash>/tally-kafka-streams-peer.jar`,
 * cacheDir as in the stack (TALLY_CACHE_DIR, default ~/.cache/tally), hash over pom.xml and src/.
 * Runs `mvn -q -B package` only when no finished build of these sources exists (a copy of the
 * project is built under the cache, so the repo gets no target/). Idempotent, and safe to call
 * concurrently: one build per process, and a build finished by another process is reused.
 */
export function buildKafkaStreamsPeer(log: Log): Promise<string> {
  const files = sourceFiles();
  const hash = sourceHash(files);
  let p = builds.get(hash);
  if (!p) {
    p = build(files, hash, log);
    builds.set(hash, p);
    p.catch(() => builds.delete(hash));
  }
  return p;
}

async function build(files: string[], hash: string, log: Log): Promise<string> {
  const dir = path.join(loadConfig().cacheDir, 'bench', `kafka-streams-${hash}`);
  const jar = path.join(dir, JAR_NAME);
  if (fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(jar)) return jar;
  if (!commandExists('java')) throw new Error('java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)');
  if (!commandExists('mvn')) throw new Error('mvn not found: install Maven (Debian: apt-get install maven) to build the Kafka Streams peer');

  const tmp = `${dir}.tmp-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  const work = path.join(tmp, 'project');
  fs.mkdirSync(work, { recursive: true });
  try {
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(work, f)), { recursive: true });
      fs.copyFileSync(path.join(projectDir, f), path.join(work, f));
    }
    log(`building the Kafka Streams peer (mvn package, sources ${hash}) into ${dir}; the first build downloads Kafka Streams from Maven Central`);
    const started = Date.now();
    const tick = setInterval(() => log(`  still building the Kafka Streams peer … ${Math.round((Date.now() - started) / 1000)} s`), 15_000);
    let output = '';
    let code: number | null;
    try {
      code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn('mvn', ['-q', '-B', '-Dstyle.color=never', 'package'], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
        const keep = (b: Buffer) => { output = (output + b.toString()).slice(-8000); };
        child.stdout.on('data', keep);
        child.stderr.on('data', keep);
        child.on('error', reject);
        child.on('exit', (c) => resolve(c));
      });
    } finally {
      clearInterval(tick);
    }
    const built = path.join(work, 'target', JAR_NAME);
    if (code !== 0 || !fs.existsSync(built)) throw new Error(`mvn package of the Kafka Streams peer failed (exit ${code}):\n${output.trim().slice(-3000)}`);
    fs.renameSync(built, path.join(tmp, JAR_NAME));
    fs.rmSync(work, { recursive: true, force: true });
    fs.writeFileSync(path.join(tmp, '.complete'), new Date().toISOString());
    log(`Kafka Streams peer built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${jar}`);
    if (fs.existsSync(path.join(dir, '.complete')) && fs.existsSync(jar)) return jar; // another process won
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    return jar;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ── run ─────────────────────────────────────────────────────────────────────────────────────────

/** One JSON line of the app's stdout (see Main.java). */
interface AppLine {
  type: string;
  [k: string]: unknown;
}

interface Summary { counted: number; duplicates: number; records: number; dead_letters: number; dirty_rows: number; final: boolean; state: string }

/** The running app: its stdout lines parsed, stderr kept for errors, exit observed. */
class PeerProcess {
  readonly child: ChildProcess;
  lastSummary: (Summary & { at: number }) | undefined;
  /** ms from spawn to the app's first RUNNING state (group joined, tasks and stores initialised). */
  runningAfterMs: number | undefined;
  readonly startedAt = Date.now();
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stderr = '';
  private readonly exitPromise: Promise<void>;

  constructor(jar: string, args: string[], log: Log) {
    this.child = spawn('java', [...JVM_ARGS, '-jar', jar, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
        let line: AppLine;
        try {
          line = JSON.parse(text) as AppLine;
        } catch {
          log(`  [kafka-streams] ${text}`);
          continue;
        }
        if (line.type === 'summary') {
          this.lastSummary = { ...(line as unknown as Summary), at: Date.now() };
          if (this.lastSummary.final) log(`  [kafka-streams] ${text}`);
          continue;
        }
        if (line.type === 'state' && line.to === 'RUNNING' && this.runningAfterMs === undefined) this.runningAfterMs = Date.now() - this.startedAt;
        log(`  [kafka-streams] ${text}`);
      }
    });
    this.child.stderr?.on('data', (b: Buffer) => { this.stderr = (this.stderr + b.toString()).slice(-8000); });
  }

  stderrTail(): string {
    return this.stderr.trim().split('\n').slice(-25).join('\n');
  }

  /** SIGTERM (KafkaStreams.close: a clean final commit), SIGKILL after graceMs. True if it exited by itself. */
  async stop(graceMs: number): Promise<boolean> {
    if (this.exited) return true; // exited, or never started (an 'error' instead of an 'exit')
    await stopChild(this.child, graceMs);
    await this.exitPromise;
    return this.child.signalCode !== 'SIGKILL';
  }
}

async function createTopic(brokers: string, spec: Kafka.NewTopic): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, log_level: 0 });
  try {
    await new Promise<void>((resolve, reject) => admin.createTopic(spec, 15_000, (err) => {
      if (!err) resolve();
      else if (err.code === ERR_TOPIC_ALREADY_EXISTS) reject(new Error(`topic ${spec.topic} already exists: the Kafka Streams peer needs a fresh output topic (a leftover of an earlier run?)`));
      else reject(kafkaError(`create topic ${spec.topic}`, err));
    }));
  } finally {
    admin.disconnect();
  }
}

/**
 * Runs the peer once on `inputTopic` (preloaded, `partitions` partitions, `events` records) with a
 * fresh application.id, so no state or offsets carry over. Resolves once the app is stopped and
 * everything it created is deleted: output and dlq topics, its changelog topics, its consumer
 * group, its state directory.
 *
 * `counted` and `duplicates` come from the output topic, read read_committed after the app stopped:
 * the latest row per key (window|advertiser|campaign|partition), summed. The app's own
 * (non-transactional) counters are compared with them and any difference goes into `note`.
 */
export async function runKafkaStreamsPeer(opts: KafkaStreamsPeerOptions): Promise<ContenderResult> {
  const { brokers, inputTopic, partitions, events, windowMs, outputTopic, log } = opts;
  const jar = await buildKafkaStreamsPeer(log);

  const md = await fetchMetadata(brokers, 10_000);
  const input = md.topics.find((t) => t.name === inputTopic);
  if (!input) throw new Error(`input topic ${inputTopic} does not exist`);
  if (input.partitions.length !== partitions) throw new Error(`input topic ${inputTopic} has ${input.partitions.length} partitions, expected ${partitions}`);

  const appId = `tally-bench-ks-${crypto.randomBytes(4).toString('hex')}`;
  const dlqTopic = `${outputTopic}-dlq`;
  const created: string[] = [];
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-ks-state-'));
  let app: PeerProcess | undefined;
  let caught: GroupProgress | undefined;
  try {
    await createTopic(brokers, { topic: outputTopic, num_partitions: partitions, replication_factor: 1, config: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '0', 'segment.ms': '600000' } });
    created.push(outputTopic);
    await createTopic(brokers, { topic: dlqTopic, num_partitions: partitions, replication_factor: 1 });
    created.push(dlqTopic);
    caught = await watchGroup(brokers, appId, inputTopic, partitions);

    log(`kafka-streams peer: application.id ${appId}, ${events} events on ${inputTopic} (${partitions} partitions), window ${windowMs} ms, JVM ${JVM_ARGS.join(' ')}`);
    const t0 = Date.now();
    app = new PeerProcess(jar, [
      '--bootstrap', brokers, '--application-id', appId, '--input', inputTopic, '--output', outputTopic, '--dlq', dlqTopic,
      '--window-ms', String(windowMs), '--threads', '1', '--state-dir', stateDir, '--summary-ms', '250',
    ], log);
    // Generous: JVM start, group join, and a slow shared machine.
    const deadline = t0 + 120_000 + events;
    let lastProgress = t0;
    // A failed offset fetch (coordinator still loading, a slow broker) is just "not yet".
    while (!(await caught.caughtUp().catch(() => false))) {
      if (app.exited) throw new Error(`the Kafka Streams peer exited early (${JSON.stringify(app.exited)}):\n${app.stderrTail()}`);
      if (Date.now() > deadline) throw new Error(`the Kafka Streams peer did not catch up within ${Math.round((deadline - t0) / 1000)} s (last summary ${JSON.stringify(app.lastSummary)}):\n${app.stderrTail()}`);
      if (Date.now() - lastProgress >= 5000 && app.lastSummary) {
        lastProgress = Date.now();
        log(`  … ${app.lastSummary.records} records processed, ${Math.round((Date.now() - t0) / 1000)} s`);
      }
      await sleep(100);
    }
    const seconds = (Date.now() - t0) / 1000;
    caught.close();
    caught = undefined;
    log(`kafka-streams peer: caught up after ${seconds.toFixed(1)} s (${Math.round(events / seconds)} events/s); waiting for its last rows`);

    // Every record is processed; the last rows are forwarded by the next punctuation (≤ 100 ms),
    // which commits at once. Wait for a summary taken after that, then stop the app cleanly.
    const caughtAt = Date.now();
    while (!(app.lastSummary && app.lastSummary.at > caughtAt + 200 && app.lastSummary.dirty_rows === 0)) {
      if (app.exited) throw new Error(`the Kafka Streams peer exited (${JSON.stringify(app.exited)}):\n${app.stderrTail()}`);
      if (Date.now() - caughtAt > 30_000) throw new Error(`the Kafka Streams peer still had unemitted rows 30 s after catching up (${JSON.stringify(app.lastSummary)})`);
      await sleep(50);
    }
    const clean = await app.stop(10_000);
    if (!clean) log('kafka-streams peer: did not stop within 10 s of SIGTERM, killed');
    const appCounters = app.lastSummary;

    // The output, read_committed: latest row per key wins, tombstones delete.
    const rows = new Map<string, { impressions: number; duplicates: number }>();
    let watermarks = 0;
    await readTopicToEnd(brokers, outputTopic, (m) => {
      const key = m.key?.toString() ?? '';
      if (m.value === null || m.value === undefined) {
        rows.delete(key);
        return;
      }
      const rec = JSON.parse(m.value.toString()) as { type: string; impressions?: number; duplicates?: number };
      if (rec.type === 'window') rows.set(key, { impressions: rec.impressions ?? 0, duplicates: rec.duplicates ?? 0 });
      else watermarks++;
    }, { timeoutMs: 60_000, isolation: 'read_committed' });
    let counted = 0;
    let duplicates = 0;
    for (const r of rows.values()) {
      counted += r.impressions;
      duplicates += r.duplicates;
    }

    const runningS = (app.runningAfterMs ?? NaN) / 1000;
    const notes = [
      `Kafka Streams 4.1.1, exactly_once_v2, commit.interval.ms 100, 1 stream thread, ${partitions} tasks, no repartition`,
      'dedup in a RocksDB window store, counts in a cached RocksDB key-value store, both with changelogs',
      'rows emitted once per commit by a 100 ms punctuator',
      `JVM ${JVM_ARGS.join(' ')} (RocksDB memory is off-heap)`,
      `timed from JVM spawn: JVM start, group join and store init included (RUNNING after ${(runningS).toFixed(1)} s,`
        + ` ≈ ${Math.round(events / (seconds - runningS))} events/s from there)`,
      `counted from the latest of ${rows.size} output rows (read_committed)`,
    ];
    if (appCounters && (appCounters.counted !== counted || appCounters.duplicates !== duplicates)) {
      notes.push(`the app's own counters differ: counted ${appCounters.counted}, duplicates ${appCounters.duplicates} (aborted transactions reprocessed?)`);
    }
    if (appCounters && appCounters.dead_letters > 0) notes.push(`${appCounters.dead_letters} dead letters`);
    if (watermarks === 0) notes.push('no watermark records seen');
    return { seconds, eventsPerSec: events / seconds, counted, duplicates, note: notes.join('; ') };
  } finally {
    caught?.close();
    if (app && !app.exited) await app.stop(10_000);
    // The changelog topics Kafka Streams created: <application.id>-<store>-changelog.
    const internal = await fetchMetadata(brokers, 10_000)
      .then((m) => m.topics.map((t) => t.name).filter((n) => n.startsWith(`${appId}-`)))
      .catch(() => [] as string[]);
    await deleteTopics(brokers, [...created, ...internal]).catch((err: unknown) => log(`kafka-streams peer: could not delete topics: ${String(err)}`));
    if (app) await deleteGroup(jar, brokers, appId, log);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

/** node-rdkafka's AdminClient cannot delete groups; the peer's jar can (Admin.deleteConsumerGroups). */
async function deleteGroup(jar: string, brokers: string, appId: string, log: Log): Promise<void> {
  const child = spawn('java', ['-Xmx256m', '-jar', jar, '--bootstrap', brokers, '--application-id', appId, '--delete-group', 'true'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
  const code = await new Promise<number | null>((resolve) => {
    child.on('exit', (c) => resolve(c));
    child.on('error', () => resolve(null));
  });
  if (code !== 0) log(`kafka-streams peer: could not delete consumer group ${appId}: ${out.trim().slice(-500)}`);
}
