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
 */
import crypto from 'node:crypto';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import Kafka from 'node-rdkafka';
import { io, type Socket } from 'socket.io-client';
import { checkCountRecord } from '../server/src/contracts/count-record.js';
import { TokenStore } from '../server/src/auth/index.js';
import { createClickHouse, identifier, queryRows } from '../server/src/clickhouse/index.js';
import { homePartition } from '../server/src/impression/index.js';
import type { ClientToServerEvents, LiveWindowRow, ServerToClientEvents } from '../server/src/contracts/live-protocol.js';
import { createSandbox, freePort, RoleProcess, sleep, stopStartedStack, type Sandbox } from '../test/kit/harness.js';

export interface Percentiles { p50: number; p99: number; max: number }

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
const CLICKHOUSE_POLL_MS = 50;
const READY_TIMEOUT_MS = 120_000;
const PROBE_TIMEOUT_MS = 120_000;
const DRAIN_TIMEOUT_MS = 60_000;
const COST_MICROS = 1_000;

const COMMITTED = 0;
const CLICKHOUSE = 1;
const SOCKETIO = 2;
const OBSERVERS = ['committed', 'clickhouse', 'socket.io'] as const;

/** One row key: its events' indices in produce order and, per observer, how many of them were seen. */
class RowSeq {
  events = new Int32Array(1024);
  produced = 0;
  readonly seen = new Int32Array(OBSERVERS.length);

  push(eventIndex: number): void {
    if (this.produced === this.events.length) {
      const grown = new Int32Array(this.events.length * 2);
      grown.set(this.events);
      this.events = grown;
    }
    this.events[this.produced++] = eventIndex;
  }
}

class Tracker {
  /** performance.now() just before produce(), per event index. */
  readonly sentAt: Float64Array;
  /** performance.now() when each observer first held the event; NaN until then. */
  readonly visibleAt: Float64Array[];
  /**
   * For the committed observer: the Kafka timestamp (aggregator's clock at produce(), inside the
   * still open transaction) of the first row version holding the event, on this process's clock.
   */
  readonly writtenAt: Float64Array;
  readonly rows = new Map<string, RowSeq>();
  /** Counts above what was produced for the key (would mean a double count), per observer. */
  readonly overCounts = new Int32Array(OBSERVERS.length);
  /** Rows seen that this run did not produce. */
  readonly unknownRows = new Int32Array(OBSERVERS.length);
  private readonly byWindow = new Map<number, RowSeq[]>();

  constructor(capacity: number, readonly partitions: number, readonly campaign: (p: number, j: number) => string, readonly advertiser: (j: number) => string) {
    this.sentAt = new Float64Array(capacity);
    this.visibleAt = OBSERVERS.map(() => new Float64Array(capacity).fill(NaN));
    this.writtenAt = new Float64Array(capacity).fill(NaN);
  }

  /** The row of (window, partition, j), created on first use (once per window per key, not per event). */
  row(windowStart: number, p: number, j: number): RowSeq {
    let w = this.byWindow.get(windowStart);
    if (!w) {
      w = [];
      for (let pp = 0; pp < this.partitions; pp++) {
        for (let jj = 0; jj < CAMPAIGNS_PER_PARTITION; jj++) {
          const r = new RowSeq();
          w.push(r);
          this.rows.set(`${windowStart}|${this.advertiser(jj)}|${this.campaign(pp, jj)}|${pp}`, r);
        }
      }
      this.byWindow.set(windowStart, w);
    }
    return w[p * CAMPAIGNS_PER_PARTITION + j];
  }

  observe(obs: number, key: string, count: number, at: number, writtenAt?: number): void {
    const r = this.rows.get(key);
    if (!r) {
      this.unknownRows[obs]++;
      return;
    }
    if (count > r.produced) this.overCounts[obs]++;
    const n = Math.min(count, r.produced);
    const vis = this.visibleAt[obs];
    for (let k = r.seen[obs]; k < n; k++) vis[r.events[k]] = at;
    if (writtenAt !== undefined) for (let k = r.seen[obs]; k < n; k++) this.writtenAt[r.events[k]] = writtenAt;
    if (n > r.seen[obs]) r.seen[obs] = n;
  }

  /** Events produced but not yet seen, per observer. */
  pending(): number[] {
    const out = OBSERVERS.map(() => 0);
    for (const r of this.rows.values()) for (let o = 0; o < OBSERVERS.length; o++) out[o] += r.produced - r.seen[o];
    return out;
  }
}

/** Percentiles of `to(i) − from(i)` over events [first, end); a NaN end counts as +Infinity (missing). */
function percentilesOf(first: number, end: number, from: Float64Array, to: Float64Array): { p: Percentiles; missing: number } {
  const n = end - first;
  const lat = new Float64Array(n);
  let missing = 0;
  for (let i = first; i < end; i++) {
    const v = to[i];
    if (Number.isNaN(v)) missing++;
    lat[i - first] = Number.isNaN(v) ? Infinity : v - from[i];
  }
  lat.sort();
  const rank = (q: number) => lat[Math.max(0, Math.ceil(q * n) - 1)];
  const r1 = (x: number) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : x);
  return { p: n === 0 ? { p50: NaN, p99: NaN, max: NaN } : { p50: r1(rank(0.5)), p99: r1(rank(0.99)), max: r1(lat[n - 1]) }, missing };
}

function roleDied(roles: RoleProcess[]): void {
  for (const r of roles) {
    if (!r.alive) throw new Error(`tally ${r.role} exited (code ${r.child.exitCode}); log ${r.logFile}:\n${r.log().split('\n').slice(-15).join('\n')}`);
  }
}

/** Polls `probe` (a throw counts as false) until true; fails at once if a role exited or `fatal` names a reason. */
async function until(what: string, roles: RoleProcess[], timeoutMs: number, probe: () => boolean | Promise<boolean>, everyMs = 50, fatal?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    roleDied(roles);
    const reason = fatal?.();
    if (reason !== undefined) throw new Error(`${what}: ${reason}`);
    if (await Promise.resolve().then(probe).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export async function measureLatency(opts: LatencyOptions): Promise<LatencyResult> {
  const { ratePerSec, seconds, log } = opts;
  if (!(ratePerSec > 0) || !(seconds > 0)) throw new RangeError('ratePerSec and seconds must be positive');
  const sb: Sandbox = await createSandbox('latency', opts.env ?? {});
  const { config } = sb;
  const P = config.partitions;
  const W = config.windowMs;
  const run = crypto.randomBytes(4).toString('hex');
  const advertiser = (j: number) => `lat-adv-${j}`;
  const campaignNames = Array.from({ length: P }, (_, p) => Array.from({ length: CAMPAIGNS_PER_PARTITION }, (_, j) => `lat-cmp-${j}-p${p}`));
  const campaign = (p: number, j: number) => campaignNames[p][j];
  const partitionOfCampaign = new Map<string, number>();
  campaignNames.forEach((cs, p) => cs.forEach((c) => partitionOfCampaign.set(c, p)));

  const warmEvents = Math.round(ratePerSec * WARMUP_S);
  const measuredEvents = Math.round(ratePerSec * seconds);
  const streamEvents = warmEvents + measuredEvents;
  const totalEvents = PROBE_EVENTS + streamEvents;
  const tracker = new Tracker(totalEvents, P, campaign, advertiser);
  const nextJ = new Int32Array(P);

  const roles: RoleProcess[] = [];
  const closers: Array<() => Promise<void> | void> = [];
  let stopObservers = false;
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
    await until('api /readyz with the live feed attached', roles, READY_TIMEOUT_MS,
      async () => ((await (await fetch(`${base}/readyz`)).json()) as { liveFeed?: boolean }).liveFeed === true, 200);

    // Observer 1: read_committed consumer of impression-counts.
    const consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': config.kafka.brokers,
      'group.id': `tally-latency-${run}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      'fetch.wait.max.ms': 10,
      log_level: 3,
    }, { 'auto.offset.reset': 'earliest' });
    await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    closers.push(() => new Promise<void>((resolve) => consumer.disconnect(() => resolve())));
    consumer.assign(Array.from({ length: P }, (_, partition) => ({ topic: config.topics.counts, partition, offset: -2 })));
    consumer.setDefaultConsumeTimeout(10);
    let consumeErrors = 0;
    const committedLoop = (async () => {
      while (!stopObservers) {
        const msgs = await new Promise<Kafka.Message[]>((resolve) => consumer.consume(1000, (err, m) => {
          if (err) consumeErrors++;
          resolve(err ? [] : m);
        }));
        const at = performance.now();
        for (const m of msgs) {
          const c = checkCountRecord(m.value);
          if (c.kind !== 'window') continue;
          const r = c.record;
          const written = m.timestamp === undefined ? undefined : m.timestamp - performance.timeOrigin;
          tracker.observe(COMMITTED, `${r.window_start}|${r.advertiser_id}|${r.campaign_id}|${r.source_partition}`, r.impressions, at, written);
        }
        if (msgs.length === 0 && consumeErrors > 0) await sleep(10);
      }
    })();
    closers.push(() => committedLoop);

    // Observer 2: ClickHouse FINAL, polled.
    const db = identifier(config.clickhouse.database);
    const sql = `SELECT toUnixTimestamp(window_start) * 1000 AS ws, advertiser_id, campaign_id, source_partition, impressions FROM ${db}.impression_counts FINAL`;
    let polls = 0;
    let pollMs = 0;
    let pollErrors = 0;
    const chLoop = (async () => {
      while (!stopObservers) {
        const t0 = performance.now();
        try {
          const rows = await queryRows<{ ws: number | string; advertiser_id: string; campaign_id: string; source_partition: number | string; impressions: number | string }>(ch, sql);
          const at = performance.now();
          polls++;
          pollMs += at - t0;
          for (const r of rows) tracker.observe(CLICKHOUSE, `${Number(r.ws)}|${r.advertiser_id}|${r.campaign_id}|${Number(r.source_partition)}`, Number(r.impressions), at);
        } catch {
          pollErrors++;
        }
        await sleep(Math.max(0, CLICKHOUSE_POLL_MS - (performance.now() - t0)));
      }
    })();
    closers.push(() => chLoop);

    // Observer 3: a socket.io live-feed client in the admin (all advertisers) view.
    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(base, { path: '/socket.io', auth: { token }, reconnection: false, transports: ['websocket'] });
    closers.push(() => { socket.close(); });
    let snapshots = 0;
    let liveUpdates = 0;
    let disconnected: string | undefined;
    const onLiveRows = (rows: LiveWindowRow[]) => {
      const at = performance.now();
      for (const r of rows) {
        // Each campaign has one source partition (see the top comment): its total is that row's count.
        const p = partitionOfCampaign.get(r.campaignId);
        if (p === undefined) tracker.unknownRows[SOCKETIO]++;
        else tracker.observe(SOCKETIO, `${r.windowStart}|${r.advertiserId}|${r.campaignId}|${p}`, r.impressions, at);
      }
    };
    socket.on('snapshot', (s) => { snapshots++; onLiveRows(s.rows); });
    socket.on('update', (u) => { liveUpdates++; onLiveRows(u.rows); });
    socket.on('disconnect', (reason) => { if (!stopObservers) disconnected = reason; });
    let connectError: string | undefined;
    socket.on('connect_error', (e) => { connectError = e.message; });
    await until('the first live snapshot', roles, READY_TIMEOUT_MS, () => snapshots > 0, 50,
      () => (connectError === undefined ? undefined : `socket.io connect_error ${connectError}`));

    // Producer: idempotent (so retries never reorder a partition), acks=all, small linger; each
    // event to its home partition explicitly, keyed by its id (what the default partitioner does).
    const producer = new Kafka.Producer({
      'metadata.broker.list': config.kafka.brokers,
      'enable.idempotence': true,
      'linger.ms': 5,
      'batch.num.messages': 10_000,
      'queue.buffering.max.messages': 1_000_000,
      dr_cb: true,
      log_level: 3,
    }, { 'request.required.acks': -1 });
    let delivered = 0;
    let deliveryErrors = 0;
    let firstDeliveryError: string | undefined;
    producer.on('delivery-report', (err) => {
      if (err) {
        deliveryErrors++;
        firstDeliveryError ??= err.message;
      } else delivered++;
    });
    await new Promise<void>((resolve, reject) => producer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    producer.setPollInterval(20);
    closers.push(() => new Promise<void>((resolve) => producer.flush(10_000, () => producer.disconnect(() => resolve()))));

    const topic = config.topics.impressions;
    let next = 0;
    /** Produces event `next`; false if librdkafka's queue is full (try again next tick). */
    const produceNext = (): boolean => {
      const i = next;
      const id = `lat-${run}-${i}`;
      const p = homePartition(id, P);
      const j = nextJ[p] % CAMPAIGNS_PER_PARTITION;
      const ts = Date.now();
      const row = tracker.row(ts - (ts % W), p, j);
      const value = Buffer.from(`{"impression_id":"${id}","ts":${ts},"advertiser_id":"${advertiser(j)}","campaign_id":"${campaign(p, j)}","cost_micros":${COST_MICROS}}`);
      tracker.sentAt[i] = performance.now();
      try {
        producer.produce(topic, p, value, id, ts);
      } catch (err) {
        if ((err as { code?: number }).code === Kafka.CODES.ERRORS.ERR__QUEUE_FULL) return false;
        throw err;
      }
      nextJ[p]++;
      row.push(i);
      next++;
      return true;
    };

    // Probes: the pipeline flows end to end (aggregator assigned and restored, sink and feed reading).
    const p0 = performance.now();
    while (next < PROBE_EVENTS) if (!produceNext()) await sleep(TICK_MS);
    await until('probe events seen by every observer', roles, PROBE_TIMEOUT_MS, () => tracker.pending().every((n) => n === 0));
    log(`latency: pipeline flowing (probes seen everywhere after ${Math.round(performance.now() - p0)} ms); ${WARMUP_S} s warm-up, then ${seconds} s at ${ratePerSec}/s`);

    // Warm-up and measured period, one continuous stream in TICK_MS ticks.
    loopDelay.enable();
    let queueFull = 0;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const streamEnd = PROBE_EVENTS + streamEvents;
    while (next < streamEnd) {
      const elapsed = performance.now() - start;
      const target = Math.min(streamEnd, PROBE_EVENTS + Math.floor((ratePerSec * elapsed) / 1000));
      while (next < target) {
        if (!produceNext()) {
          queueFull++;
          break;
        }
      }
      if (next >= streamEnd) break;
      await sleep(TICK_MS - ((performance.now() - start) % TICK_MS));
    }
    loopDelay.disable();
    const cpu = process.cpuUsage(cpu0);
    const cpuPct = Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - start)) * 100);
    const firstMeasured = PROBE_EVENTS + warmEvents;
    const spanMs = tracker.sentAt[streamEnd - 1] - tracker.sentAt[firstMeasured];
    const achievedPerSec = measuredEvents > 1 && spanMs > 0 ? Math.round(((measuredEvents - 1) * 1000) / spanMs) : NaN;
    log(`latency: produced ${streamEvents} events (${measuredEvents} measured at ${achievedPerSec}/s); waiting until every observer saw them`);

    // Drain.
    const drainStart = Date.now();
    let lastLog = 0;
    let drained = true;
    for (;;) {
      roleDied(roles);
      const pend = tracker.pending();
      if (pend.every((n) => n === 0)) break;
      if (Date.now() - drainStart > DRAIN_TIMEOUT_MS) {
        drained = false;
        log(`latency: drain timed out with ${pend.map((n, o) => `${OBSERVERS[o]} ${n}`).join(', ')} events unseen`);
        break;
      }
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        log(`latency: unseen ${pend.map((n, o) => `${OBSERVERS[o]} ${n}`).join(', ')}`);
      }
      await sleep(50);
    }

    const committed = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.visibleAt[COMMITTED]);
    const clickhouse = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.visibleAt[CLICKHOUSE]);
    const socketio = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.visibleAt[SOCKETIO]);
    // The committed figure split at the aggregator's produce() of the row (its record timestamp, 1 ms
    // resolution, wall clocks of two processes on one machine): before = input fetch + processing +
    // waiting for the commit interval; after = transaction commit + the read_committed fetch.
    const written = percentilesOf(firstMeasured, streamEnd, tracker.sentAt, tracker.writtenAt).p;
    const toCommitted = percentilesOf(firstMeasured, streamEnd, tracker.writtenAt, tracker.visibleAt[COMMITTED]).p;
    const problems: string[] = [];
    if (!drained) problems.push(`not all events seen within ${DRAIN_TIMEOUT_MS / 1000} s (missing counted as Infinity): committed ${committed.missing}, clickhouse ${clickhouse.missing}, socket.io ${socketio.missing}`);
    OBSERVERS.forEach((o, k) => {
      if (tracker.overCounts[k] > 0) problems.push(`${o}: ${tracker.overCounts[k]} counts above what was produced (double count?)`);
      if (tracker.unknownRows[k] > 0) problems.push(`${o}: ${tracker.unknownRows[k]} rows this run did not produce`);
    });
    if (deliveryErrors > 0) problems.push(`${deliveryErrors} delivery errors (first: ${firstDeliveryError})`);
    if (queueFull > 0) problems.push(`producer queue full ${queueFull} times`);
    if (consumeErrors > 0) problems.push(`${consumeErrors} consume errors on the committed observer`);
    if (pollErrors > 0) problems.push(`${pollErrors} failed ClickHouse polls`);
    if (disconnected) problems.push(`socket.io client disconnected: ${disconnected}`);
    const lagP99 = loopDelay.percentile(99) / 1e6;
    const note = [
      `exact per event (row counts are cumulative; ${P * CAMPAIGNS_PER_PARTITION} rows per window, each campaign on one partition);`,
      `committed = delivered to a read_committed consumer (fetch.wait.max.ms 10); socket.io = received by an admin client (feed sends ≤ 4 updates/s);`,
      `clickhouse = upper bound, FINAL polled every ${CLICKHOUSE_POLL_MS} ms (${polls} polls, mean query ${polls ? (pollMs / polls).toFixed(1) : '-'} ms): overstates by < one poll period + one query;`,
      `producer idempotent, acks=all, linger.ms 5, ${TICK_MS} ms ticks; ${WARMUP_S} s warm-up excluded; window ${W} ms, ${P} partitions;`,
      `committed split at the aggregator's produce() of the row: produce → row written p50 ${written.p50} p99 ${written.p99}, row written → committed and fetched p50 ${toCommitted.p50} p99 ${toCommitted.p99} ms;`,
      `bench process while producing: ${cpuPct} % of one core, event-loop delay p99 ${lagP99.toFixed(1)} ms; ${liveUpdates} live updates; delivered ${delivered}/${next}`,
      ...(problems.length ? [`PROBLEMS: ${problems.join('; ')}`] : []),
    ].join(' ');
    return { offeredPerSec: ratePerSec, achievedPerSec, events: measuredEvents, committed: committed.p, clickhouse: clickhouse.p, socketio: socketio.p, note };
  } finally {
    loopDelay.disable();
    stopObservers = true;
    for (const close of closers.reverse()) await Promise.resolve().then(close).catch(() => undefined);
    const codes = await Promise.all(roles.map((r) => r.stop()));
    codes.forEach((c, k) => { if (c !== 0) log(`latency: tally ${roles[k].role} exited with ${c} (log ${roles[k].logFile})`); });
    await sb.cleanup();
  }
}

// `npx tsx bench/latency.ts [--rate N] [--seconds N]`: one measurement, printed as JSON.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const arg = (name: string, def: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : def;
  };
  const result = await measureLatency({ ratePerSec: arg('--rate', 20_000), seconds: arg('--seconds', 20), log: (m) => process.stderr.write(`${m}\n`) });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  await stopStartedStack();
}
