/**
 * `npm run bench`: the aggregator's exactly-once throughput, restore time and dedup memory on the
 * local stack, each the median of several runs in this one process. Prints a table and writes
 * docs/benchmarks.md. Options: --events N (default 300000), --runs N (default 3).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { repoRoot, type TallyConfig } from '../server/src/config/index.js';
import { kafkaError } from '../server/src/errors.js';
import { ensureDebianPackage } from '../server/src/stack/index.js';
import { generate } from '../server/src/tools/index.js';
import { createSandbox, RoleProcess, sleep, stopStartedStack } from '../test/integration/harness.js';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  process.stdout.write('usage: npm run bench -- [--events N] [--runs N]\n  measures aggregator throughput (exactly-once), restore time and bytes per dedup id\n');
  process.exit(0);
}
const arg = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const EVENTS = arg('--events', 300_000);
const RUNS = arg('--runs', 3);

async function groupCaughtUp(config: TallyConfig): Promise<() => Promise<boolean>> {
  const consumer = new Kafka.KafkaConsumer({ 'metadata.broker.list': config.kafka.brokers, 'group.id': config.groups.aggregator, 'enable.auto.commit': false, log_level: 0 }, {});
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
  const topic = config.topics.impressions;
  const parts = Array.from({ length: config.partitions }, (_, partition) => ({ topic, partition }));
  const ends = await Promise.all(parts.map((tp) => new Promise<number>((resolve, reject) =>
    consumer.queryWatermarkOffsets(topic, tp.partition, 10_000, (err, o) => (err ? reject(err) : resolve(o.highOffset))))));
  return async () => {
    const committed = await new Promise<Kafka.TopicPartitionOffset[]>((resolve, reject) =>
      consumer.committed(parts, 10_000, (err, tps) => (err ? reject(err) : resolve(tps))));
    // A committed offset may sit one past the last record when a transaction marker ends the partition.
    const done = committed.every((tp) => (tp.offset ?? -1) >= ends[tp.partition] - 1);
    if (done) consumer.disconnect();
    return done;
  };
}

async function metric(proc: RoleProcess, name: string): Promise<number> {
  const m = /"metricsPort":(\d+)/.exec(proc.log());
  if (!m) throw new Error('no metrics port in the aggregator log');
  const text = await (await fetch(`http://127.0.0.1:${m[1]}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

interface Run { kcatPerSec: number; eventsPerSec: number; restoreMs: number; restoreToProcessingMs: number; bytesPerId: number; ids: number; rssMb: number }

async function oneRun(i: number): Promise<Run> {
  const sb = await createSandbox(`bench${i}`, { TALLY_INSTANCE_ID: 'bench-1', LOG_LEVEL: 'info' });
  try {
    process.stderr.write(`run ${i + 1}/${RUNS}: producing ${EVENTS} events (5 % duplicates)…\n`);
    const truth = await generate(sb.config, { seed: 1000 + i, count: EVENTS, idPrefix: 'bench-', duplicates: 0.05, bad: 0, tooLate: 0, lateWithinHorizon: 0, keyMode: 'home', spanMs: 10 * 60_000 });
    const sent = truth.counts.sent;
    // The ceiling on this machine: kcat reading the same topic to its end, output discarded.
    const k0 = Date.now();
    const kcat = spawnSync('kcat', ['-C', '-b', sb.config.kafka.brokers, '-t', sb.config.topics.impressions, '-o', 'beginning', '-e', '-q', '-f', '%o\n'], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
    const kcatSeconds = (Date.now() - k0) / 1000;
    const kcatRecords = kcat.stdout.toString().split('\n').filter(Boolean).length;
    if (kcat.status !== 0 || kcatRecords !== sent) throw new Error(`kcat read ${kcatRecords} of ${sent} records (exit ${kcat.status})`);
    const caughtUp = await groupCaughtUp(sb.config);
    const t0 = Date.now();
    let agg = new RoleProcess('aggregator', sb.env);
    while (!(await caughtUp())) await sleep(100);
    const seconds = (Date.now() - t0) / 1000;
    const ids = await metric(agg, 'tally_aggregator_dedup_ids');
    const bytes = await metric(agg, 'tally_aggregator_dedup_bytes');
    const rss = await metric(agg, 'tally_aggregator_process_resident_memory_bytes');
    process.stderr.write(`  ${sent} records in ${seconds.toFixed(1)} s; SIGKILL and restart to time the restore…\n`);
    await agg.kill();
    const t1 = Date.now();
    agg = new RoleProcess('aggregator', sb.env);
    let restoreMs = NaN;
    while (Number.isNaN(restoreMs) && Date.now() - t1 < 120_000) {
      const m = /"ms":(\d+),"msg":"aggregator.restored"/.exec(agg.log());
      if (m) restoreMs = Number(m[1]);
      else await sleep(50);
    }
    const restoreToProcessingMs = Date.now() - t1;
    await agg.stop();
    return { kcatPerSec: sent / kcatSeconds, eventsPerSec: sent / seconds, restoreMs, restoreToProcessingMs, bytesPerId: bytes / ids, ids, rssMb: rss / 1048576 };
  } finally {
    await sb.cleanup();
  }
}

ensureDebianPackage('kcat', 'kcat', (m) => process.stderr.write(`${m}\n`));
const runs: Run[] = [];
for (let i = 0; i < RUNS; i++) runs.push(await oneRun(i));
await stopStartedStack();

const rows: Array<[string, string, string]> = [
  ['kcat, consume to the end (the ceiling)', `${Math.round(median(runs.map((r) => r.kcatPerSec))).toLocaleString('en')} records/s`, runs.map((r) => Math.round(r.kcatPerSec)).join(', ')],
  ['aggregator, exactly-once (100 ms transactions)', `${Math.round(median(runs.map((r) => r.eventsPerSec))).toLocaleString('en')} events/s (${Math.round(100 * median(runs.map((r) => r.eventsPerSec / r.kcatPerSec)))} % of kcat)`, runs.map((r) => Math.round(r.eventsPerSec)).join(', ')],
  [`restore of ${Math.round(median(runs.map((r) => r.ids))).toLocaleString('en')} ids (changelog read)`, `${median(runs.map((r) => r.restoreMs))} ms`, runs.map((r) => r.restoreMs).join(', ')],
  ['SIGKILL → restored (process start included)', `${median(runs.map((r) => r.restoreToProcessingMs))} ms`, runs.map((r) => r.restoreToProcessingMs).join(', ')],
  ['dedup memory per id held', `${median(runs.map((r) => r.bytesPerId)).toFixed(1)} bytes`, runs.map((r) => r.bytesPerId.toFixed(1)).join(', ')],
  ['aggregator RSS after the run', `${Math.round(median(runs.map((r) => r.rssMb)))} MiB`, runs.map((r) => Math.round(r.rssMb)).join(', ')],
];
const table = ['| measure | median | runs |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
process.stdout.write(`\n${table}\n`);
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const doc = `# Benchmarks

Measured by \`npm run bench -- --events ${EVENTS} --runs ${RUNS}\` on ${new Date().toISOString().slice(0, 10)}
(${machine}), against the local stack (Kafka 4.1.1 KRaft, ClickHouse 18.16). Each run preloads
\`impressions\` (8 partitions, generator JSON, 5 % duplicates), starts one aggregator process and
times it from process start until the group's committed offsets reach the end of every partition.
The machine is shared and noisy: compare figures of one run with each other, not across days.

${table}

Notes:
- Throughput includes process start, group join and the (empty) restore; the steady-state rate is
  higher. kcat reads the same topic without parsing or transactions: the ceiling, not a peer.
- The dedup figure is the \`DedupSet\` backing arrays divided by ids held (open addressing,
  16 bytes an id, load 0.53–0.8).
- Not measured yet (issue 6): the at-least-once mode, ClickHouse's Kafka engine and Kafka Streams
  EOS v2 side by side, produce → count latency at a fixed rate, 1M/10M ids, and a k6 scenario for
  live viewers (socket.io). The k6 ingest and reader scenarios are below.
`;
// This run replaces the aggregator section; other sections (the k6 results of `npm run load`) stay.
const docPath = path.join(repoRoot, 'docs', 'benchmarks.md');
const previous = fs.existsSync(docPath) ? fs.readFileSync(docPath, 'utf8') : '';
const keep = previous.indexOf('\n## k6 load tests');
fs.writeFileSync(docPath, keep >= 0 ? `${doc}${previous.slice(keep)}` : doc);
process.stderr.write('wrote docs/benchmarks.md\n');
