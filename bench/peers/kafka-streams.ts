/**
 * The Kafka Streams peer of `npm run bench` (issue 6): bench/peers/kafka-streams/, a minimal Kafka
 * Streams 4.1.1 app doing tally's windowed count with dedup under exactly_once_v2 — the reference
 * implementation of the approach tally takes. This module builds it (once, cached) and runs it
 * against a preloaded input topic, timed like the aggregator in bench/contenders/tally.ts: from
 * process start until its consumer group has committed offsets at the end of every input partition.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { deleteTopics, fetchMetadata } from '../../server/src/kafka/index.js';
import { sleep } from '../../test/kit/waiting.js';
import { type ContenderResult } from '../lib/contender-result.js';
import { watchGroup, type GroupProgress } from '../lib/group-progress.js';
import { buildJvmPeer, createFreshTopic, deleteGroupWithJar, PeerProcess, readOutputCounts, type JvmPeerProject, type Log } from './jvm-peer.js';

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

const PROJECT: JvmPeerProject = { dir: 'kafka-streams', jar: 'tally-kafka-streams-peer.jar', title: 'the Kafka Streams peer', downloads: 'Kafka Streams' };
/** The JVM's heap; RocksDB's memory (block cache, memtables) is off-heap on top of it. */
const JVM_ARGS = ['-Xms256m', '-Xmx1g', '-XX:+UseG1GC', '-Djava.awt.headless=true'];

interface Summary { counted: number; duplicates: number; records: number; dead_letters: number; dirty_rows: number; final: boolean; state: string }

/** The peer's runnable jar, built once per source version (see buildJvmPeer). */
export function buildKafkaStreamsPeer(log: Log): Promise<string> {
  return buildJvmPeer(PROJECT, log);
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
  let app: PeerProcess<Summary> | undefined;
  let caught: GroupProgress | undefined;
  try {
    await createFreshTopic(brokers, { topic: outputTopic, num_partitions: partitions, replication_factor: 1, config: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '0', 'segment.ms': '600000' } });
    created.push(outputTopic);
    await createFreshTopic(brokers, { topic: dlqTopic, num_partitions: partitions, replication_factor: 1 });
    created.push(dlqTopic);
    caught = await watchGroup(brokers, appId, inputTopic, partitions);

    log(`kafka-streams peer: application.id ${appId}, ${events} events on ${inputTopic} (${partitions} partitions), window ${windowMs} ms, JVM ${JVM_ARGS.join(' ')}`);
    const t0 = Date.now();
    app = new PeerProcess<Summary>('kafka-streams', jar, JVM_ARGS, [
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
    const { counted, duplicates, rows, others: watermarks } = await readOutputCounts(brokers, outputTopic);

    const runningS = (app.runningAfterMs ?? NaN) / 1000;
    const notes = [
      `Kafka Streams 4.1.1, exactly_once_v2, commit.interval.ms 100, 1 stream thread, ${partitions} tasks, no repartition`,
      'dedup in a RocksDB window store, counts in a cached RocksDB key-value store, both with changelogs',
      'rows emitted once per commit by a 100 ms punctuator',
      `JVM ${JVM_ARGS.join(' ')} (RocksDB memory is off-heap)`,
      `timed from JVM spawn: JVM start, group join and store init included (RUNNING after ${(runningS).toFixed(1)} s,`
        + ` ≈ ${Math.round(events / (seconds - runningS))} events/s from there)`,
      `counted from the latest of ${rows} output rows (read_committed)`,
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
    if (app) await deleteGroupWithJar(jar, ['--bootstrap', brokers, '--application-id', appId], log);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}
