/**
 * Latency at a fixed offered rate (issue 6): p50/p99/max from produce to
 *   - committed count: a read_committed consumer of impression-counts receives a row version that
 *     includes the event (the moment any read_committed reader can see it);
 *   - ClickHouse visibility: `impression_counts FINAL` returns such a version;
 *   - socket.io: an admin live-feed client (the dashboard's protocol) receives such a total.
 * The whole pipeline runs as real processes on a fresh sandbox of the local stack: `tally
 * aggregator`, `tally sink`, `tally api` (the live feed).
 *
 * Exact per-event latency without per-event markers. A row of impression-counts is one
 * (window start, advertiser, campaign, source partition) with a cumulative `impressions` count.
 * This bench produces every event to its home partition with an idempotent producer, so the
 * events of one row key sit in the partition in produce order, and the aggregator counts them in
 * offset order; every id is fresh and every event valid and on time (ts = now), so nothing is a
 * duplicate, late or dead-lettered. Hence a committed version with impressions = N contains
 * exactly the first N events of its key in produce order, and event k (1-based within its key)
 * becomes visible to an observer at the first moment the observer holds a count ≥ k. Each
 * observer keeps one cursor per key; no per-event object is ever created.
 *
 * The live feed sums a (window, advertiser, campaign) over source partitions. Rather than bound
 * that sum (partitions commit out of order), the bench gives each campaign exactly one source
 * partition: campaign `lat-cmp-<j>-p<p>` only ever gets events whose home partition is p (the
 * id's partition is computed first, the campaign chosen from it). The live total of such a
 * campaign *is* its single row's count, so the socket.io figure uses the same exact rule. What this
 * costs in realism: none for the aggregator's work (same records, same transactions); rows per
 * transaction are partitions × campaignsPerPartition (16 with 8 partitions), like a handful of
 * busy campaigns spread over all partitions.
 *
 * Exactness of each figure (all times on this process's monotonic clock):
 *   committed  — exact for "delivered to a read_committed consumer" (fetch.wait.max.ms 10, in the
 *                same process as the producer), i.e. the commit moment plus at most one fetch;
 *   socket.io  — exact for "a dashboard client received it" (includes the feed's ≤ 4 updates/s);
 *   clickhouse — an upper bound: time of the response of the first poll (every POLL_MS) that saw
 *                it; the row became visible after the start of the previous poll, so the figure
 *                overstates by less than one poll period plus one query (mean query time in note).
 * An event not seen before the drain timeout counts as +Infinity (so p99/max become Infinity if
 * that many are missing) and is reported in the note.
 *
 * Phases: start roles → wait for api health and a first live snapshot → probe events until all
 * three observers see them (the pipeline is flowing end to end) → warm-up (WARMUP_S, not counted)
 * followed without a gap by the measured period → drain (every event seen everywhere) → stop roles
 * gracefully, delete the sandbox. The local stack is started if needed and left as it is
 * (stopStartedStack() is the caller's business).
 *
 * Parts: the row layout, the per-event tracker and the percentiles in lib/latency-tracker.ts, the
 * three observers in lib/latency-observers.ts, the events' producer in lib/latency-producer.ts.
 */
import crypto from 'node:crypto';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { TokenStore } from '../server/src/auth/index.js';
import { createClickHouse } from '../server/src/clickhouse/index.js';
import { freePort } from '../test/kit/free-port.js';
import { RoleProcess, roleExited } from '../test/kit/role-process.js';
import { createSandbox } from '../test/kit/sandbox.js';
import { stopStartedStack } from '../test/kit/stack.js';
import { sleep, waitUntil } from '../test/kit/waiting.js';
import { CLICKHOUSE_POLL_MS, observeClickHouse, observeCommitted, observeLiveFeed, type Observer } from './lib/latency-observers.js';
import { LatencyProducer } from './lib/latency-producer.js';
import { CLICKHOUSE, COMMITTED, OBSERVERS, percentilesOf, RowLayout, SOCKETIO, Tracker, type Percentiles } from './lib/latency-tracker.js';

export type { Percentiles };

export interface LatencyResult {
  offeredPerSec: number;
  achievedPerSec: number;
  /** Events of the measured period (warm-up and probes excluded). */
  events: number;
  /** ms, produce → delivered to a read_committed consumer of impression-counts. */
  committed: Percentiles;
  /** ms, produce → returned by `impression_counts FINAL` (upper bound, see note). */
  clickhouse: Percentiles;
  /** ms, produce → received by a socket.io live-feed client. */
  socketio: Percentiles;
  note: string;
}

export interface LatencyOptions {
  ratePerSec: number;
  seconds: number;
  log: (m: string) => void;
  /** Extra environment for the sandbox and every role (e.g. a mode switch). */
  env?: Record<string, string>;
}

const WARMUP_S = 2;
const TICK_MS = 10;
const PROBE_EVENTS = 64;
/** Campaigns per source partition; advertisers = this many (campaign j of partition p belongs to advertiser j). */
const CAMPAIGNS_PER_PARTITION = 2;
const READY_TIMEOUT_MS = 120_000;
const PROBE_TIMEOUT_MS = 120_000;
const DRAIN_TIMEOUT_MS = 60_000;

export async function measureLatency(opts: LatencyOptions): Promise<LatencyResult> {
  const { ratePerSec, seconds, log } = opts;
  if (!(ratePerSec > 0) || !(seconds > 0)) throw new RangeError('ratePerSec and seconds must be positive');
  const sb = await createSandbox('latency', opts.env ?? {});
  const { config } = sb;
  const P = config.partitions;
  const W = config.windowMs;
  const run = crypto.randomBytes(4).toString('hex');

  const warmEvents = Math.round(ratePerSec * WARMUP_S);
  const measuredEvents = Math.round(ratePerSec * seconds);
  const streamEvents = warmEvents + measuredEvents;
  const tracker = new Tracker(PROBE_EVENTS + streamEvents, new RowLayout(P, CAMPAIGNS_PER_PARTITION));

  const roles: RoleProcess[] = [];
  /** Waits on `probe`, giving up at once when a role has exited. */
  const until = (what: string, timeoutMs: number, probe: () => boolean | Promise<boolean>, everyMs = 50, fatal?: () => string | undefined) =>
    waitUntil(what, probe, { timeoutMs, everyMs, abortIf: () => roleExited(roles) ?? fatal?.() });
  const closers: Array<() => Promise<void> | void> = [];
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  try {
    // Roles.
    const ch = createClickHouse(config, { log: 'off' });
    closers.push(() => ch.close());
    const { token } = await TokenStore.forClickHouse(ch, config.clickhouse.database).create('latency bench', ['admin']);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    roles.push(new RoleProcess('aggregator', { ...sb.env, TALLY_INSTANCE_ID: sb.env.TALLY_INSTANCE_ID ?? `latency-${run}` }));
    roles.push(new RoleProcess('sink', sb.env));
    roles.push(new RoleProcess('api', { ...sb.env, TALLY_HTTP_PORT: String(port), TALLY_HTTP_HOST: '127.0.0.1' }, ['--no-web-build']));
    log(`latency: sandbox ${config.topics.impressions}, ${P} partitions, window ${W} ms; roles started, logs in ${roles.map((r) => r.logFile).join(', ')}`);
    // /readyz reports liveFeed: true once socket.io is attached and has read impression-counts to its
    // end; a websocket opened before that (express alone) hangs without a connect_error.
    await until('api /readyz with the live feed attached', READY_TIMEOUT_MS,
      async () => ((await (await fetch(`${base}/readyz`)).json()) as { liveFeed?: boolean }).liveFeed === true, 200);

    const observers: Observer[] = [];
    const committed = await observeCommitted(config, `tally-latency-${run}`, tracker);
    observers.push(committed);
    const clickhouse = observeClickHouse(ch, config.clickhouse.database, tracker);
    observers.push(clickhouse);
    const live = observeLiveFeed(base, token, tracker);
    observers.push(live);
    closers.push(...observers.map((o) => () => o.stop()));
    await until('the first live snapshot', READY_TIMEOUT_MS, () => live.snapshots > 0, 50,
      () => (live.connectError === undefined ? undefined : `socket.io connect_error ${live.connectError}`));

    const producer = await LatencyProducer.connect(config.kafka.brokers, config.topics.impressions, run, W, tracker);
    closers.push(() => producer.close());

    // Probes: the pipeline flows end to end (aggregator assigned and restored, sink and feed reading).
    const p0 = performance.now();
    // Pacing: a full librdkafka queue drains by itself; try again a tick later.
    while (producer.next < PROBE_EVENTS) if (!producer.produceNext()) await sleep(TICK_MS);
    await until('probe events seen by every observer', PROBE_TIMEOUT_MS, () => tracker.pending().every((n) => n === 0));
    log(`latency: pipeline flowing (probes seen everywhere after ${Math.round(performance.now() - p0)} ms); ${WARMUP_S} s warm-up, then ${seconds} s at ${ratePerSec}/s`);

    // Warm-up and measured period, one continuous stream in TICK_MS ticks.
    loopDelay.enable();
    let queueFull = 0;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const streamEnd = PROBE_EVENTS + streamEvents;
    while (producer.next < streamEnd) {
      const elapsed = performance.now() - start;
      const target = Math.min(streamEnd, PROBE_EVENTS + Math.floor((ratePerSec * elapsed) / 1000));
      while (producer.next < target) {
        if (!producer.produceNext()) {
          queueFull++;
          break;
        }
      }
      if (producer.next >= streamEnd) break;
      // Pacing: the offered rate, one tick at a time.
      await sleep(TICK_MS - ((performance.now() - start) % TICK_MS));
    }
    loopDelay.disable();
    const cpu = process.cpuUsage(cpu0);
    const cpuPct = Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - start)) * 100);
    const firstMeasured = PROBE_EVENTS + warmEvents;
    const spanMs = tracker.sentAt[streamEnd - 1] - tracker.sentAt[firstMeasured];
    const achievedPerSec = measuredEvents > 1 && spanMs > 0 ? Math.round(((measuredEvents - 1) * 1000) / spanMs) : NaN;
    log(`latency: produced ${streamEvents} events (${measuredEvents} measured at ${achievedPerSec}/s); waiting until every observer saw them`);

    // Drain: a timeout is a result (missing events count as Infinity), a role that died is an error.
    const unseen = () => tracker.pending().map((n, o) => `${OBSERVERS[o]} ${n}`).join(', ');
    let lastLog = 0;
    const drained = await until('every observer to see every event', DRAIN_TIMEOUT_MS, () => {
      if (tracker.pending().every((n) => n === 0)) return true;
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        log(`latency: unseen ${unseen()}`);
      }
      return false;
    }).then(() => true, (err: unknown) => {
      if (roleExited(roles) !== undefined) throw err;
      log(`latency: drain timed out with ${unseen()} events unseen`);
      return false;
    });

    const committedP = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.visibleAt[COMMITTED]);
    const clickhouseP = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.visibleAt[CLICKHOUSE]);
    const socketioP = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.visibleAt[SOCKETIO]);
    // The committed figure split at the aggregator's produce() of the row (its record timestamp, 1 ms
    // resolution, wall clocks of two processes on one machine): before = input fetch + processing +
    // waiting for the commit interval; after = transaction commit + the read_committed fetch.
    const written = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.writtenAt).p;
    const toCommitted = percentilesOf(firstMeasured, streamEnd, tracker.writtenAt, tracker.visibleAt[COMMITTED]).p;
    const problems = [
      ...(drained ? [] : [`not all events seen within ${DRAIN_TIMEOUT_MS / 1000} s (missing counted as Infinity): committed ${committedP.missing}, clickhouse ${clickhouseP.missing}, socket.io ${socketioP.missing}`]),
      ...tracker.problems(),
      ...producer.problems(),
      ...(queueFull > 0 ? [`producer queue full ${queueFull} times`] : []),
      ...observers.flatMap((o) => o.problems()),
    ];
    const lagP99 = loopDelay.percentile(99) / 1e6;
    const note = [
      `exact per event (row counts are cumulative; ${P * CAMPAIGNS_PER_PARTITION} rows per window, each campaign on one partition);`,
      `committed = delivered to a read_committed consumer (fetch.wait.max.ms 10); socket.io = received by an admin client (feed sends ≤ 4 updates/s);`,
      `clickhouse = upper bound, FINAL polled every ${CLICKHOUSE_POLL_MS} ms (${clickhouse.pollStats()}): overstates by < one poll period + one query;`,
      `producer idempotent, acks=all, linger.ms 5, ${TICK_MS} ms ticks; ${WARMUP_S} s warm-up excluded; window ${W} ms, ${P} partitions;`,
      `committed split at the aggregator's produce() of the row: produce → row written p50 ${written.p50} p99 ${written.p99}, row written → committed and fetched p50 ${toCommitted.p50} p99 ${toCommitted.p99} ms;`,
      `bench process while producing: ${cpuPct} % of one core, event-loop delay p99 ${lagP99.toFixed(1)} ms; ${live.updates} live updates; ${producer.deliveryStats()}`,
      ...(problems.length ? [`PROBLEMS: ${problems.join('; ')}`] : []),
    ].join(' ');
    return { offeredPerSec: ratePerSec, achievedPerSec, events: measuredEvents, committed: committedP.p, clickhouse: clickhouseP.p, socketio: socketioP.p, note };
  } finally {
    loopDelay.disable();
    for (const close of closers.reverse()) await Promise.resolve().then(close).catch(() => undefined);
    const codes = await Promise.all(roles.map((r) => r.stop()));
    codes.forEach((c, k) => { if (c !== 0) log(`latency: tally ${roles[k].role} exited with ${c} (log ${roles[k].logFile})`); });
    await sb.cleanup();
  }
}

const USAGE = `usage: npx tsx bench/latency.ts [--rate N] [--seconds N]

Latency at a fixed offered rate, produce → committed count / ClickHouse FINAL / socket.io
(p50, p99, max), on a fresh sandbox of the local stack; prints one result as JSON.

  --rate N      offered events/s [20000]
  --seconds N   measured seconds, after a ${WARMUP_S} s warm-up [20]
`;

// `npx tsx bench/latency.ts [--rate N] [--seconds N]`: one measurement, printed as JSON.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const arg = (name: string, def: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const result = await measureLatency({ ratePerSec: arg('--rate', 20_000), seconds: arg('--seconds', 20), log: (m) => process.stderr.write(`${m}\n`) });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  await stopStartedStack();
}
