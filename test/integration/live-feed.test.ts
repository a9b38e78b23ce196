/**
 * The live feed on the real stack: real aggregator and sink processes, an http server in the test
 * with attachLiveFeed, socket.io clients per advertiser watching one streamed run. Checks isolation
 * between advertisers, refused joins and handshakes, revocation, the update rate, exactness of
 * what a client holds against ClickHouse FINAL and the generator's truth, and measures the
 * produce → client latency. The ClickHouse preload: live-feed-preload.test.ts.
 */
import assert from 'node:assert/strict';
import { io, type Socket } from 'socket.io-client';
import type { PipelineStatus } from '../../server/src/contracts/api-types.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import type { ClientToServerEvents, ServerToClientEvents } from '../../server/src/contracts/live-protocol.js';
import { generate, type GroundTruth } from '../../server/src/tools/index.js';
import { createSandbox, eventually, sleep } from '../kit/harness.js';
import { assertExact, Pipeline } from '../kit/pipeline.js';
import { clickhouseTotals, diffMaps, type LiveClient, LiveFeedBed, minSpanOfFive, sameMap, truthTotals } from './live-feed-fixtures.js';

/**
 * The tests of this describe share one streamed run, watched from its start by a client of A, one
 * of B and an admin. The ones that read what the run left come first; those that send traffic of
 * their own (status ticks, latency probes, in an advertiser no client of A or B sees) or revoke a
 * token come after them. Each also runs alone.
 */
describe('live feed: one streamed run (real Kafka + ClickHouse, real aggregator and sink)', function () {
  this.timeout(600_000);
  const bed = new LiveFeedBed();
  const prefix = 'lv-';
  const advA = `${prefix}adv-1`;
  const advB = `${prefix}adv-2`;
  const advLatency = `${prefix}adv-9`;
  let config: TallyConfig;
  let url: string;
  let a: LiveClient;
  let b: LiveClient;
  let admin: LiveClient;
  let truth: GroundTruth;
  /** The pipeline status, sampled once a second while the run was produced. */
  const statuses: PipelineStatus[] = [];

  before(async function () {
    this.timeout(600_000);
    const sb = await createSandbox('live', {
      TALLY_WINDOW_MS: '5000', TALLY_ALLOWED_LATENESS_MS: '2000', TALLY_OUT_OF_ORDERNESS_MS: '1000', TALLY_IDLE_TIMEOUT_MS: '1000',
    });
    bed.sb = sb;
    config = sb.config;
    const pipeline = new Pipeline(sb);
    bed.pipeline = pipeline;
    pipeline.startSink();
    pipeline.startAggregator();

    const { verifier } = bed;
    verifier.tokens.set('tok-a', { tokenId: 'a', name: 'advertiser A', scopes: [`advertiser:${advA}`] });
    verifier.tokens.set('tok-b', { tokenId: 'b', name: 'advertiser B', scopes: [`advertiser:${advB}`] });
    verifier.tokens.set('tok-admin', { tokenId: 'adm', name: 'ops', scopes: ['admin'] });
    verifier.tokens.set('tok-ingest', { tokenId: 'ing', name: 'ingest', scopes: ['ingest'] });
    url = await bed.serve(config);

    a = bed.client(url, 'tok-a');
    b = bed.client(url, 'tok-b');
    admin = bed.client(url, 'tok-admin');
    await Promise.all([a.ready(), b.ready(), admin.ready()]);

    // Streamed: 2 advertisers, paced over ~8 s, duplicates, malformed, late and too-late records.
    const producing = generate(config, {
      seed: 4242, idPrefix: prefix, advertisers: 2, campaigns: 3, rate: 2_500, durationS: 8,
      duplicates: 0.15, bad: 9, tooLate: 4, lateWithinHorizon: 30,
    });
    let producingDone = false;
    void producing.finally(() => { producingDone = true; });
    while (!producingDone) {
      statuses.push(await bed.feed.pipelineStatus());
      await sleep(1_000); // the sampling interval, while the generator runs
    }
    truth = await producing;
    // ClickHouse reaches the truth (and the DLQ and duplicates add up).
    await assertExact(pipeline, truth);
  });

  after(async function () {
    this.timeout(120_000);
    await bed.close();
  });

  /**
   * Event time moves with traffic only (idle is not progress): an impression a second, in another
   * advertiser's view, lets every window of the run close, until the pipeline status settles.
   * Done once; its settled status kept.
   */
  let settling: Promise<PipelineStatus> | undefined;
  function settled(): Promise<PipelineStatus> {
    settling ??= (async () => {
      let status: PipelineStatus | undefined;
      const ticker = new DeliveringProducer(config.kafka.brokers);
      await ticker.connect();
      let ticks = 0;
      // The status is read before the next tick goes out: a tick just sent is real lag for a moment.
      // A settled pipeline still writes: each tick, and every partition's progress record once per
      // idle timeout (1 s here), which the sink takes up to its batch time to commit. So lag 0 is a
      // moment, not a state: every partition must be seen at lag 0 (aggregator and sink) after the
      // run, though not all at the same instant; a lag that never clears fails.
      const caughtUp = { aggregator: new Set<number>(), sink: new Set<number>() };
      await eventually('pipeline status settles', async () => {
        status = await bed.feed.pipelineStatus();
        for (const p of status?.partitions ?? []) {
          if (p.aggregatorLag === 0) caughtUp.aggregator.add(p.partition);
          if (p.sinkLag === 0) caughtUp.sink.add(p.partition);
        }
        const settled = status !== undefined && status.exact?.equal === true && status.exact.kafkaImpressions === truth.counts.unique
          && caughtUp.aggregator.size === config.partitions && caughtUp.sink.size === config.partitions;
        if (settled) return true;
        const tick = { impression_id: `${prefix}tick-${ticks++}`, ts: Date.now(), advertiser_id: advLatency, campaign_id: `${advLatency}-tick`, cost_micros: 1 };
        await ticker.send([{ topic: config.topics.impressions, partition: null, key: tick.impression_id, value: Buffer.from(JSON.stringify(tick)) }]);
        return false;
      }, 30_000, 1_100).catch(() => assert.fail(`status: ${JSON.stringify(status)}`)).finally(() => ticker.disconnect());
      return status as PipelineStatus;
    })();
    return settling;
  }

  it('refuses handshakes with an unknown token, without one, or with one that reads nothing', async () => {
    for (const [auth, expected] of [[{ token: 'nope' }, 'unauthorized'], [{}, 'unauthorized'], [{ token: 'tok-ingest' }, 'forbidden']] as const) {
      const s: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { auth, reconnection: false, transports: ['websocket'] });
      const err = await new Promise<Error>((resolve) => s.on('connect_error', resolve));
      assert.equal(err.message, expected, JSON.stringify(auth));
      let snapshots = 0;
      s.on('snapshot', () => snapshots++);
      await sleep(100); // a negative check needs time: a snapshot sent after the refusal would show here
      assert.equal(snapshots, 0);
      s.close();
    }
  });

  it('serves each client its own view first; a refused join (another advertiser, or all) sends no snapshot', async () => {
    assert.equal(a.snapshots[0].advertiserId, advA);
    assert.equal(b.snapshots[0].advertiserId, advB);
    assert.equal(admin.snapshots[0].advertiserId, null);
    assert.equal(a.snapshots[0].windowMs, 5000);
    const deniedBefore = b.denied.length;
    const r = await b.join(advA);
    assert.equal(r.ok, false);
    assert.match((r as { message: string }).message, /not allowed/);
    const rAll = await b.join(null);
    assert.equal(rAll.ok, false);
    await eventually('denied events for B', async () => b.denied.length >= deniedBefore + 2, 5_000, 20);
    assert.equal(b.snapshots.length, 1, 'a refused join sends no snapshot');
  });

  it('each advertiser\'s client holds exactly its own rows, equal to ClickHouse FINAL and the truth; numbers never go back', async () => {
    assert.ok(truth.rows.some((x) => x.advertiserId === advA) && truth.rows.some((x) => x.advertiserId === advB));
    const chA = await clickhouseTotals(config, advA);
    const chB = await clickhouseTotals(config, advB);
    assert.ok(sameMap(chA, truthTotals(truth, advA)));

    // Live clients converge to exactly the same numbers, only for their own advertiser.
    await eventually('A holds exactly ClickHouse FINAL', async () => sameMap(a.totals(advA), chA), 30_000, 200)
      .catch(() => assert.fail(`A: ${diffMaps(a.totals(advA), chA)}`));
    await eventually('B holds exactly ClickHouse FINAL', async () => sameMap(b.totals(advB), chB), 30_000, 200)
      .catch(() => assert.fail(`B: ${diffMaps(b.totals(advB), chB)}`));
    assert.deepEqual([...a.advertisersSeen], [advA], 'A never saw another advertiser');
    assert.deepEqual([...b.advertisersSeen], [advB], 'B never saw another advertiser');
    assert.deepEqual([...admin.advertisersSeen].sort(), [advA, advB]);
    for (const c of [a, b, admin]) assert.deepEqual(c.wentBack, [], 'a number shown never goes back');
    for (const c of [a, b]) {
      for (const u of c.updates) assert.equal(u.update.advertiserId, c.snapshots[0].advertiserId);
    }
    assert.ok(a.updates.length >= 5, `A got ${a.updates.length} updates`);
  });

  it('pipeline status: throughput while producing; then exact, DLQ by reason, duplicates, lags 0', async () => {
    assert.ok(statuses.some((s) => s.throughputPerSec > 0), `throughput while producing: ${JSON.stringify(statuses)}`);
    const st = await settled();
    assert.equal(st.partitions.length, config.partitions);
    assert.equal(st.clickhouseReachable, true);
    assert.ok(st.exact && st.exact.windows > 0 && st.exact.kafkaImpressions === st.exact.clickhouseImpressions);
    assert.equal(st.duplicatesRemoved, truth.counts.duplicatesSent);
    const expectedDlq = Object.fromEntries(Object.entries(truth.deadLetters).filter(([, n]) => n > 0));
    assert.deepEqual(Object.fromEntries(Object.entries(st.deadLetters).sort()), Object.fromEntries(Object.entries(expectedDlq).sort()));
    assert.ok(st.lastTransactionAgeMs !== null && st.lastTransactionAgeMs < 5_000, `lastTransactionAgeMs ${st.lastTransactionAgeMs}`);
    assert.ok(st.partitions.every((p) => p.watermark > 0));
    const metrics = await bed.feed.registry.metrics();
    assert.match(metrics, /tally_live_connected_clients \d/);
    assert.match(metrics, /tally_live_updates_sent_total [1-9]/);
    const delaySum = Number(/tally_live_transaction_delay_seconds_sum (\S+)/.exec(metrics)?.[1]);
    const delayCount = Number(/tally_live_transaction_delay_seconds_count (\S+)/.exec(metrics)?.[1]);
    process.stderr.write(`      [live] aggregator commit → feed: mean ${Math.round((delaySum / delayCount) * 1000)} ms over ${delayCount} transactions\n`);
  });

  it('a new connection\'s snapshot alone equals ClickHouse FINAL and the truth, every window closed', async () => {
    await settled();
    const chA = await clickhouseTotals(config, advA);
    const a2 = bed.client(url, 'tok-a');
    await a2.ready();
    assert.ok(sameMap(a2.totals(advA), chA), `A after reconnect: ${diffMaps(a2.totals(advA), chA)}`);
    assert.ok(sameMap(a2.totals(advA), truthTotals(truth, advA)));
    assert.deepEqual([...a2.advertisersSeen], [advA]);
    assert.ok(a2.snapshots[0].rows.every((x) => x.final), 'every window is closed by now');
  });

  it('produce → client latency; a burst of changes reaches a client at most 4 updates a second', async () => {
    assert.deepEqual(await admin.join(advLatency), { ok: true });
    await eventually('admin snapshot of the latency view', async () => admin.snapshots.at(-1)?.advertiserId === advLatency, 5_000, 20);
    const producer = new DeliveringProducer(config.kafka.brokers);
    await producer.connect();
    const send = (id: string, campaignId: string, ts: number) => {
      const imp = { impression_id: `${prefix}${id}`, ts, advertiser_id: advLatency, campaign_id: campaignId, cost_micros: 7 };
      return producer.send([{ topic: config.topics.impressions, partition: null, key: imp.impression_id, value: Buffer.from(JSON.stringify(imp)) }]);
    };
    const latencies: number[] = [];
    let burstUpdates: number[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const campaignId = `${advLatency}-lat-${i}`;
        const sentAt = Date.now();
        await send(`lat-${i}`, campaignId, sentAt);
        await eventually(`latency probe ${i}`, async () => [...admin.rows.values()].some((x) => x.campaignId === campaignId), 15_000, 5);
        const key = [...admin.firstSeen.keys()].find((k) => k.endsWith(`|${advLatency}|${campaignId}`)) as string;
        latencies.push((admin.firstSeen.get(key) as number) - sentAt);
        await sleep(300); // pacing: one probe at a time, each in a transaction of its own
      }
      // A change every ~120 ms (the aggregator commits after each): the feed has more changes than it may send.
      const from = admin.updates.length;
      for (let i = 0; i < 40; i++) {
        await send(`burst-${i}`, `${advLatency}-burst`, Date.now());
        await sleep(120); // pacing: a change every ~120 ms
      }
      const burstTotal = () => [...admin.rows.values()].filter((x) => x.campaignId === `${advLatency}-burst`).reduce((n, x) => n + x.impressions, 0);
      await eventually('burst seen', async () => burstTotal() === 40, 15_000, 20).catch(() => assert.fail(`burst: ${burstTotal()} of 40`));
      burstUpdates = admin.updates.slice(from).map((u) => u.update.serverTime);
    } finally {
      await producer.disconnect();
    }
    const sorted = [...latencies].sort((x, y) => x - y);
    process.stderr.write(`      [live] produce → client latency ms: ${latencies.join(', ')} (median ${sorted[Math.floor(sorted.length / 2)]}, max ${sorted.at(-1)})\n`);
    assert.ok((sorted.at(-1) as number) < 5_000);
    assert.ok(![...a.advertisersSeen, ...b.advertisersSeen].includes(advLatency));
    const burstSpan = (burstUpdates.at(-1) ?? 0) - (burstUpdates[0] ?? 0);
    process.stderr.write(`      [live] burst: ${burstUpdates.length} updates in ${burstSpan} ms, min span of 5 consecutive ${minSpanOfFive(burstUpdates)} ms\n`);
    assert.ok(burstUpdates.length >= 8, `only ${burstUpdates.length} updates during the burst`);

    // Throttle: at most 4 updates per second per client (server clock; client receipt logged).
    for (const [name, c] of [['A', a], ['B', b], ['admin', admin]] as const) {
      const serverSpan = minSpanOfFive(c.updates.map((u) => u.update.serverTime));
      const clientSpan = minSpanOfFive(c.updates.map((u) => u.receivedAt));
      process.stderr.write(`      [live] ${name}: ${c.updates.length} updates, min span of 5 consecutive: server ${serverSpan} ms, client ${clientSpan} ms\n`);
      assert.ok(serverSpan >= 1000, `${name}: 5 updates within ${serverSpan} ms`);
    }
  });

  it('a revoked token: denied, then disconnected by the server within ~2 s, and cannot come back', async () => {
    const revokedAt = Date.now();
    bed.verifier.tokens.delete('tok-b');
    await eventually('B disconnected', async () => b.disconnectedAt !== undefined, 5_000, 20);
    const took = (b.disconnectedAt as number) - revokedAt;
    process.stderr.write(`      [live] revoked B disconnected after ${took} ms (${b.disconnectReason})\n`);
    assert.ok(took <= 2_000, `took ${took} ms`);
    assert.equal(b.disconnectReason, 'io server disconnect');
    assert.ok(b.denied.some((d) => d.message === 'token revoked' && d.at >= revokedAt));
    assert.equal(a.disconnectedAt, undefined, 'A is unaffected');
    // And B cannot come back with it.
    const b2 = bed.client(url, 'tok-b');
    const err = await new Promise<Error>((resolve) => b2.socket.on('connect_error', resolve));
    assert.equal(err.message, 'unauthorized');
  });
});
