/**
 * The Flink peer of `npm run bench` (issue 16): bench/peers/flink/, a Flink 2.2 DataStream job doing
 * tally's windowed count with dedup, exactly-once by checkpoints (barriers, keyed state snapshots,
 * a two-phase-commit KafkaSink) rather than by Kafka transactions around each processing step.
 * This module builds it (once, cached, see jvm-peer.ts) and runs it in a local mini-cluster on the
 * preloaded input topic.
 *
 * Finish line: the committed output (read_committed) holds every count of the input, i.e. a
 * checkpoint covering every record has completed and committed the sink's transactions. That is
 * Flink's "counted and committed": its exactly-once position is the source offsets in the
 * checkpoint, not the consumer group's offsets, which the source commits afterwards and lazily
 * (seconds later when the source is idle) for monitoring only. The run is timed from JVM spawn
 * to that point; the group's offsets must still reach the end of every partition (checked, and
 * their time noted), as tally's and Kafka Streams' do.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { kafkaError } from '../../server/src/errors/index.js';
import { deleteTopics, fetchMetadata } from '../../server/src/kafka/index.js';
import { sleep } from '../../test/kit/waiting.js';
import { type ContenderResult } from '../lib/contender-result.js';
import { watchGroup, type GroupProgress } from '../lib/group-progress.js';
import { buildJvmPeer, createFreshTopic, deleteGroupWithJar, PeerProcess, readOutputCounts, type JvmPeerProject, type Log } from './jvm-peer.js';

export interface FlinkPeerOptions {
  brokers: string;
  inputTopic: string;
  partitions: number;
  /** Records on the input topic. */
  events: number;
  /** The ground truth the committed output must reach: unique impressions and duplicate records. */
  unique: number;
  duplicates: number;
  windowMs: number;
  /** Checkpoint interval: how often sink transactions and source offsets commit. */
  checkpointIntervalMs: number;
  /** Created (compacted, `partitions` partitions) and deleted by the run; must not exist. */
  outputTopic: string;
  log: Log;
}

const PROJECT: JvmPeerProject = { dir: 'flink', jar: 'tally-flink-peer.jar', title: 'the Flink peer', downloads: 'Flink 2.2.1 and its Kafka connector (~140 MB)' };
/** The mini-cluster's task slots: one per core of the bench machine (2), as one TaskManager would be configured. */
export const FLINK_PARALLELISM = 2;
/** The JVM's heap, as for the Kafka Streams peer; RocksDB's memory is off-heap (Flink managed memory). */
const JVM_ARGS = ['-Xms256m', '-Xmx1g', '-XX:+UseG1GC', '-Djava.awt.headless=true'];

interface Summary { counted: number; duplicates: number; records: number; dead_letters: number; rows_emitted: number; last_checkpoint: number; final: boolean }

/** The peer's runnable jar, built once per source version (see buildJvmPeer). */
export function buildFlinkPeer(log: Log): Promise<string> {
  return buildJvmPeer(PROJECT, log);
}

/** Latest row per key of the output topic, read_committed, while the job runs; and when it first held `unique`/`duplicates`. */
interface OutputWatch {
  totals(): { counted: number; duplicates: number };
  /** Date.now() of the first batch after which the sums equalled the truth; undefined so far. */
  completeAt(): number | undefined;
  stop(): Promise<void>;
}

async function watchOutput(brokers: string, topic: string, partitions: number, unique: number, duplicates: number): Promise<OutputWatch> {
  const consumer = new Kafka.KafkaConsumer({
    'metadata.broker.list': brokers,
    'group.id': `bench-flink-output-${crypto.randomBytes(4).toString('hex')}`,
    'enable.auto.commit': false,
    'isolation.level': 'read_committed',
    'fetch.wait.max.ms': 10,
    log_level: 0,
  }, { 'auto.offset.reset': 'earliest' });
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
  consumer.assign(Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0 })));
  consumer.setDefaultConsumeTimeout(20);
  const rows = new Map<string, { impressions: number; duplicates: number }>();
  let counted = 0;
  let dups = 0;
  let complete: number | undefined;
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const msgs = await new Promise<Kafka.Message[]>((resolve) => consumer.consume(1000, (err, m) => resolve(err ? [] : m)));
      const at = Date.now();
      for (const m of msgs) {
        if (!m.value) continue;
        const rec = JSON.parse(m.value.toString()) as { type: string; impressions: number; duplicates: number };
        if (rec.type !== 'window') continue;
        const key = m.key?.toString() ?? '';
        const old = rows.get(key);
        counted += rec.impressions - (old?.impressions ?? 0);
        dups += rec.duplicates - (old?.duplicates ?? 0);
        rows.set(key, { impressions: rec.impressions, duplicates: rec.duplicates });
      }
      if (complete === undefined && counted === unique && dups === duplicates) complete = at;
      // Pacing: an idle topic answers at once after the consume timeout; do not spin on it.
      if (msgs.length === 0) await sleep(20);
    }
  })();
  return {
    totals: () => ({ counted, duplicates: dups }),
    completeAt: () => complete,
    async stop() {
      stopping = true;
      await loop;
      await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
    },
  };
}

/**
 * Runs the job once on `inputTopic` with a fresh consumer group and transactional id prefix, so no
 * state or offsets carry over. Resolves once the job is stopped and everything it created is gone:
 * output topic, consumer group, work directory (checkpoints, RocksDB's files, Flink's temp files).
 *
 * `counted` and `duplicates` come from the output topic, read again read_committed after the job
 * stopped (the latest row per key, summed); the job's own counters are compared with them.
 */
export async function runFlinkPeer(opts: FlinkPeerOptions): Promise<ContenderResult> {
  const { brokers, inputTopic, partitions, events, unique, duplicates, windowMs, checkpointIntervalMs, outputTopic, log } = opts;
  const jar = await buildFlinkPeer(log);

  const md = await fetchMetadata(brokers, 10_000);
  const input = md.topics.find((t) => t.name === inputTopic);
  if (!input) throw new Error(`input topic ${inputTopic} does not exist`);
  if (input.partitions.length !== partitions) throw new Error(`input topic ${inputTopic} has ${input.partitions.length} partitions, expected ${partitions}`);

  const group = `tally-bench-flink-${crypto.randomBytes(4).toString('hex')}`;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-flink-'));
  let app: PeerProcess<Summary> | undefined;
  let caught: GroupProgress | undefined;
  let output: OutputWatch | undefined;
  let createdOutput = false;
  try {
    await createFreshTopic(brokers, { topic: outputTopic, num_partitions: partitions, replication_factor: 1, config: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '0', 'segment.ms': '600000' } });
    createdOutput = true;
    caught = await watchGroup(brokers, group, inputTopic, partitions);
    output = await watchOutput(brokers, outputTopic, partitions, unique, duplicates);

    log(`flink peer: group ${group}, ${events} events on ${inputTopic} (${partitions} partitions), window ${windowMs} ms, parallelism ${FLINK_PARALLELISM}, checkpoints every ${checkpointIntervalMs} ms, JVM ${JVM_ARGS.join(' ')}`);
    const t0 = Date.now();
    app = new PeerProcess<Summary>('flink', jar, JVM_ARGS, [
      '--bootstrap', brokers, '--group', group, '--input', inputTopic, '--output', outputTopic, '--work-dir', workDir,
      '--parallelism', String(FLINK_PARALLELISM), '--checkpoint-interval-ms', String(checkpointIntervalMs), '--window-ms', String(windowMs), '--summary-ms', '250',
    ], log);
    // Generous: JVM and mini-cluster start, and a slow shared machine.
    const deadline = t0 + 120_000 + events;
    let lastProgress = t0;
    let caughtAt: number | undefined;
    for (;;) {
      if (app.exited) throw new Error(`the Flink peer exited early (${JSON.stringify(app.exited)}):\n${app.stderrTail()}`);
      // A failed offset fetch (coordinator still loading, a slow broker) is just "not yet".
      if (caughtAt === undefined && (await caught.caughtUp().catch(() => false))) caughtAt = Date.now();
      const completeAt = output.completeAt();
      if (caughtAt !== undefined && completeAt !== undefined) break;
      // One of the two without the other for this long: something is wrong.
      const first = caughtAt ?? completeAt;
      const late = first !== undefined && Date.now() - first > 60_000 + 10 * checkpointIntervalMs;
      if (Date.now() > deadline || late) {
        const o = output.totals();
        throw new Error(`the Flink peer did not finish within ${Math.round((Date.now() - t0) / 1000)} s (offsets caught up: ${caughtAt !== undefined};`
          + ` committed output counts ${o.counted}/${unique} impressions, ${o.duplicates}/${duplicates} duplicates; last summary ${JSON.stringify(app.lastSummary)}):\n${app.stderrTail()}`);
      }
      if (Date.now() - lastProgress >= 5000 && app.lastSummary) {
        lastProgress = Date.now();
        log(`  … ${app.lastSummary.records} records processed, checkpoint ${app.lastSummary.last_checkpoint}, ${Math.round((Date.now() - t0) / 1000)} s`);
      }
      await sleep(100);
    }
    const completeAt = output.completeAt() ?? Date.now();
    const seconds = (completeAt - t0) / 1000;
    log(`flink peer: offsets caught up after ${((caughtAt - t0) / 1000).toFixed(1)} s, committed output complete after ${((completeAt - t0) / 1000).toFixed(1)} s (${Math.round(events / seconds)} events/s)`);
    await output.stop();
    output = undefined;
    caught.close();
    caught = undefined;
    const clean = await app.stop(30_000);
    if (!clean) log('flink peer: did not stop within 30 s of SIGTERM, killed');
    const jobCounters = app.lastSummary;

    const out = await readOutputCounts(brokers, outputTopic);
    const runningS = (app.runningAfterMs ?? NaN) / 1000;
    const notes = [
      `Flink 2.2.1 DataStream job in a local mini-cluster (one JVM), parallelism ${FLINK_PARALLELISM}; aligned exactly-once checkpoints every ${checkpointIntervalMs} ms`,
      'RocksDB state backend, incremental checkpoints to local disk',
      'KafkaSource read_committed (offsets committed on checkpoint) → by id → dedup (ValueState, TTL 1 h 1.6 min) → by advertiser|campaign → 1 min event-time tumbling windows (out-of-orderness 5 s, lateness 30 s + dedup horizon 1 h)',
      `changed rows emitted every ${checkpointIntervalMs} ms → KafkaSink EXACTLY_ONCE (transactions committed when the checkpoint completes)`,
      `JVM ${JVM_ARGS.join(' ')} (RocksDB memory is off-heap)`,
      `timed from JVM spawn: JVM and mini-cluster start included (job RUNNING after ${runningS.toFixed(1)} s, ≈ ${Math.round(events / (seconds - runningS))} events/s from there);`
        + ` offsets at the end after ${((caughtAt - t0) / 1000).toFixed(1)} s, committed output complete after ${((completeAt - t0) / 1000).toFixed(1)} s`,
      `counted from the latest of ${out.rows} output rows (read_committed, after the job stopped); ${jobCounters?.last_checkpoint ?? '?'} checkpoints`,
    ];
    if (jobCounters && (jobCounters.counted !== out.counted || jobCounters.duplicates !== out.duplicates)) {
      notes.push(`the job's own counters differ: counted ${jobCounters.counted}, duplicates ${jobCounters.duplicates}`);
    }
    if (jobCounters && jobCounters.dead_letters > 0) notes.push(`${jobCounters.dead_letters} records dropped as invalid`);
    return { seconds, eventsPerSec: events / seconds, counted: out.counted, duplicates: out.duplicates, note: notes.join('; ') };
  } finally {
    await output?.stop();
    caught?.close();
    if (app && !app.exited) await app.stop(30_000);
    if (createdOutput) await deleteTopics(brokers, [outputTopic]).catch((err: unknown) => log(`flink peer: could not delete ${outputTopic}: ${String(err)}`));
    if (app) await deleteGroupWithJar(jar, ['--bootstrap', brokers, '--group', group], log);
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}
