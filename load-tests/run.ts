/**
 * `npm run load`: real k6 against the local stack, ending with an exactness check.
 *
 * 1. stack up (or KAFKA_BROKERS / CLICKHOUSE_URL), a fresh sandbox (topics + database), an ingest
 *    token, a reader and a viewer token; aggregator + sink + `tally api` as child processes; once the
 *    api's live feed is attached, a 3 s warm-up of the ingest path (not measured);
 * 2. k6 load-tests/live-viewers.js (one k6 process) connects the dashboard viewers to the socket.io
 *    live feed; once they are connected, k6 load-tests/ingest.js (a second k6 process, in parallel)
 *    posts constant-arrival-rate JSON-array batches, some re-sent as client retries; the viewers stay
 *    until a few seconds after the ingest ended;
 * 3. k6 load-tests/readers.js: advertisers reading /api/v1/counts and /api/v1/campaigns;
 * 3b. the step ramp (load-tests/ingest-ramp.js, lib/ramp.ts), once per batch size: fixed arrival rates
 *    held in turn until the first step whose p99 exceeds the bound or where a request failed; the
 *    aggregator and sink are stopped meanwhile (the api process and the broker get the machine), and
 *    started again afterwards to count every event the ramp got acknowledged;
 * 4. the truth: the impressions topic read back to its end, unique valid events grouped by
 *    (window, advertiser, campaign); verify() compares ClickHouse FINAL with it, and the
 *    duplicates column with the copies found on the topic;
 * 5. a results table on stdout, appended to docs/benchmarks.md under "## k6 load tests".
 * Exit 1 if any k6 threshold failed or the counts are not exact.
 *
 * Parts: running k6 and reading its summary in lib/k6.ts, the truth read back from the topic in
 * lib/topic-truth.ts, the results table in lib/report.ts.
 *
 * Options: --ingest-rate 50 --ingest-duration 30s --batch 100 --retry-p 0.1
 *          --viewers 100 (0: no live viewers) --readers-rate 40 --readers-duration 20s --no-docs
 *          --scenarios constant,ramp --ramp-batches 100,1000 --ramp-steps 5000,10000,…,100000
 *          --ramp-step-duration 10s --ramp-p99-ms 200 --ramp-runs 1 --profile-api DIR
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { TokenStore } from '../server/src/auth/index.js';
import { createClickHouse, identifier, queryRows } from '../server/src/clickhouse/index.js';
import { ensureK6 } from '../server/src/stack/k6.js';
import { formatVerifyReport, verify } from '../server/src/tools/index.js';
import { freePort } from '../test/kit/free-port.js';
import { fetchMetrics } from '../test/kit/metrics.js';
import { Pipeline } from '../test/kit/pipeline.js';
import { RoleProcess, roleExited } from '../test/kit/role-process.js';
import { createSandbox } from '../test/kit/sandbox.js';
import { stopStartedStack, useStack } from '../test/kit/stack.js';
import { sleep, waitUntil } from '../test/kit/waiting.js';
import { k6Version, metric, parseDurationS, runK6, type K6Result } from './lib/k6.js';
import { profileTables, readProfile, summariseProfile, type ProfileSummary } from './lib/cpu-profile.js';
import { pidFromFile } from './lib/proc-cpu.js';
import { runRamp, type RampResult } from './lib/ramp.js';
import { appendToDocs, resultsTable } from './lib/report.js';
import { truthFromTopic } from './lib/topic-truth.js';

const { values: args } = parseArgs({
  options: {
    'ingest-rate': { type: 'string', default: '50' },
    'ingest-duration': { type: 'string', default: '30s' },
    batch: { type: 'string', default: '100' },
    'retry-p': { type: 'string', default: '0.1' },
    viewers: { type: 'string', default: '100' },
    'readers-rate': { type: 'string', default: '40' },
    'readers-duration': { type: 'string', default: '20s' },
    'window-ms': { type: 'string', default: '10000' },
    'no-docs': { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'constant,ramp' },
    'ramp-batches': { type: 'string', default: '100,1000' },
    // 5,000, 10,000, … 100,000 events/s.
    'ramp-steps': { type: 'string', default: Array.from({ length: 20 }, (_, i) => (i + 1) * 5_000).join(',') },
    'ramp-step-duration': { type: 'string', default: '10s' },
    'ramp-runs': { type: 'string', default: '1' },
    'ramp-p99-ms': { type: 'string', default: '200' },
    'profile-api': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`usage: npm run load -- [options]

Real k6 (built once with go install, cached) against the local stack: HTTP ingest at a constant
arrival rate with client retries, socket.io live viewers, REST readers; then the ingest step ramp
(fixed rates held in turn, per batch size, up to the first step with p99 over the bound or a failed
request: the highest sustained rate of one api process); then the counts in ClickHouse must equal
the unique events on the topic. Exit 1 on a failed threshold of the constant-rate scenarios or a
mismatch (a ramp step not met is its finding, not a failure).

options (defaults in brackets):
  --ingest-rate N          ingest requests/s [50]
  --ingest-duration D      e.g. 30s [30s]
  --batch N                events per request [100]
  --retry-p P              share of requests re-sent as client retries [0.1]
  --viewers N              socket.io live viewers, 0 for none [100]
  --readers-rate N         reader iterations/s [40]
  --readers-duration D     [20s]
  --window-ms N            aggregator window [10000]
  --no-docs                do not write docs/benchmarks.md
  --scenarios LIST         constant (ingest + viewers + readers), ramp (the step ramp) [constant,ramp]
  --ramp-batches LIST      events per request, one ramp each [100,1000]
  --ramp-steps LIST        offered events/s, each held in turn [5000,10000,…,100000]
  --ramp-step-duration D   how long each step is held [10s]
  --ramp-p99-ms N          a step is met when its p99 is at most this and no request failed [200]
  --ramp-runs N            ramps per batch size, in turn; the found limit is their median [1]
                           (3 on this machine: ≈ 20 M events, ≈ 12 min of ramps, then their exactness check)
  --profile-api DIR        run the api with node --cpu-prof into DIR and print its top frames
`);
  process.exit(0);
}

const log = (m: string) => process.stderr.write(`[load] ${m}\n`);
const RUN_ID = `k6${crypto.randomBytes(3).toString('hex')}`;
const ADVERTISERS = 5;
const CAMPAIGNS = 4;
/**
 * Live viewers connect spread over this long; the ingest starts once all of them are connected, at
 * the latest this long after them (k6 start-up included).
 */
const VIEWERS_RAMP_MS = 3_000;
const VIEWERS_LEAD_MS = VIEWERS_RAMP_MS + 3_000;
/** Viewers stay connected this long after the ingest's planned end (its last answers, the last windows' updates). */
const VIEWERS_TAIL_MS = 10_000;

async function main(): Promise<number> {
  const config = await useStack();
  const k6 = await ensureK6(config.cacheDir, log);
  const version = await k6Version(k6);
  log(version);

  const sb = await createSandbox('load', { TALLY_WINDOW_MS: args['window-ms'] });
  const ch = createClickHouse(sb.config);
  const pipeline = new Pipeline(sb);
  let api: RoleProcess | undefined;
  try {
    const store = TokenStore.forClickHouse(ch, sb.config.clickhouse.database);
    const advertisers = Array.from({ length: ADVERTISERS }, (_, i) => `${RUN_ID}-adv-${i}`);
    const ingestToken = (await store.create('k6 ingest', ['ingest'])).token;
    const readerToken = (await store.create('k6 advertiser', advertisers.map((a) => `advertiser:${a}`))).token;
    const viewerToken = (await store.create('k6 viewer', advertisers.map((a) => `advertiser:${a}`))).token;
    const viewers = Number(args.viewers);

    const scenarios = new Set(args.scenarios.split(',').map((x) => x.trim()));
    const constant = scenarios.has('constant');
    const rampRuns = Number(args['ramp-runs']);
    if (!Number.isSafeInteger(rampRuns) || rampRuns < 1) throw new Error(`--ramp-runs must be a positive integer, got ${args['ramp-runs']}`);
    // Without the constant-rate scenarios the aggregator and sink start after the ramp (they would only compete with it).
    if (constant) {
      pipeline.startAggregator();
      pipeline.startSink();
    }
    const profileDir = args['profile-api'] === undefined ? undefined : path.resolve(args['profile-api']);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const apiProc = new RoleProcess('api', {
      ...sb.env,
      TALLY_HTTP_HOST: '127.0.0.1',
      TALLY_HTTP_PORT: String(port),
      // The per-token limits protect production; a load test of one token would only measure 429s.
      TALLY_INGEST_RATE_LIMIT_PER_MIN: '1000000',
      TALLY_API_RATE_LIMIT_PER_MIN: '1000000',
      // Every viewer shares one token here: its socket and snapshot budgets must hold them all.
      TALLY_LIVE_SOCKETS_PER_TOKEN: '1000000',
      TALLY_LIVE_SNAPSHOTS_PER_MIN_PER_TOKEN: '1000000',
    }, ['--no-web-build'], profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
    api = apiProc;
    await waitUntil('tally api /readyz', async () => {
      const res = await fetch(`${base}/readyz`);
      // /readyz does not wait for the live feed, which attaches in the background and first reads
      // impression-counts to its end: the viewers need it, and measuring the ingest while the api
      // still does that start-up work would count the start-up in the ingest's latency.
      return res.ok && ((await res.json()) as { liveFeed?: boolean }).liveFeed === true;
    }, { timeoutMs: 90_000, everyMs: 250, abortIf: () => roleExited([apiProc]) });
    log(`stack ready: api ${base}, topics ${sb.env.TALLY_TOPIC_PREFIX}*, database ${sb.config.clickhouse.database}, window ${sb.config.windowMs} ms`);
    const warmUpEvents = await warmUp(base, ingestToken);
    log(`warm-up: ${warmUpEvents} events acknowledged (not measured; part of the truth)`);

    const common = { BASE_URL: base, RUN_ID, ADVERTISERS: String(ADVERTISERS), CAMPAIGNS: String(CAMPAIGNS) };
    const viewersHoldMs = VIEWERS_LEAD_MS + parseDurationS(args['ingest-duration']) * 1000 + VIEWERS_TAIL_MS;
    const live = constant && viewers > 0
      ? runK6(k6, 'live-viewers.js', {
        ...common, VIEWER_TOKEN: viewerToken, VIEWERS: String(viewers), RAMP_MS: String(VIEWERS_RAMP_MS),
        HOLD_MS: String(viewersHoldMs), OUT_OF_ORDERNESS_MS: String(sb.config.outOfOrdernessMs),
      }, RUN_ID, log)
      : undefined;
    if (live) await viewersConnected(live, viewers, `${base}/metrics`, apiProc);
    const ingest = constant
      ? await runK6(k6, 'ingest.js', {
        ...common, INGEST_TOKEN: ingestToken, RATE: args['ingest-rate'], DURATION: args['ingest-duration'],
        BATCH: args.batch, RETRY_P: args['retry-p'],
      }, RUN_ID, log)
      : undefined;
    const viewersResult = await live;
    const readers = constant
      ? await runK6(k6, 'readers.js', {
        ...common, READER_TOKEN: readerToken, RATE: args['readers-rate'], DURATION: args['readers-duration'],
      }, RUN_ID, log)
      : undefined;

    const ramps: RampResult[] = [];
    if (scenarios.has('ramp')) {
      // The ramp measures one api process and the broker: the aggregator and sink pause meanwhile (a
      // clean stop commits their transactions) and count the ramp's events once they start again.
      if (constant) await pipeline.stopAll();
      // Rounds interleave the batch sizes, so the machine's noise falls on all of them.
      for (let round = 0; round < rampRuns; round++) {
        for (const batch of args['ramp-batches'].split(',').map(Number)) {
          log(`ramp ${round + 1}/${rampRuns}, batches of ${batch}`);
          ramps.push(await runRamp(k6, {
            batch, steps: args['ramp-steps'].split(',').map(Number),
            stepS: parseDurationS(args['ramp-step-duration']), p99Ms: Number(args['ramp-p99-ms']),
          }, { ...common, INGEST_TOKEN: ingestToken }, {
            api: apiProc.child.pid, broker: process.env.KAFKA_BROKERS ? undefined : pidFromFile(path.join(config.stackDir, 'kafka', 'broker.pid')),
          }, log, round));
        }
      }
      pipeline.startAggregator();
      pipeline.startSink();
    }
    const profile = profileDir === undefined ? undefined : await stopAndSummarise(apiProc, profileDir);
    if (profile !== undefined) api = undefined;

    log('reading the impressions topic back for the truth');
    const rampEvents = ramps.reduce((n, r) => n + r.eventsAcked, 0);
    const constantEvents = ingest === undefined ? 0 : metric(ingest, 'events_acked', 'count');
    const { truth, records, invalid } = await truthFromTopic(sb, `${RUN_ID}-`, warmUpEvents + constantEvents + rampEvents);
    const uniqueAcked = (ingest === undefined ? 0 : metric(ingest, 'events_unique_acked', 'count')) + rampEvents;
    log(`topic: ${records} records, ${truth.counts.unique} unique, ${truth.counts.duplicatesSent} duplicates, ${invalid} invalid; k6 saw ${uniqueAcked} unique events acknowledged`);
    log('verifying ClickHouse FINAL against the truth');
    const result = await verify(sb.config, truth, {
      // The ramp's events are counted after it (the aggregator paused): allow for ~10,000 events/s of catching up.
      timeoutMs: 120_000 + Math.ceil(rampEvents / 10), stableMs: 2_000,
      onProgress: (p) => { if (p.attempt % 5 === 1) log(`  verify attempt ${p.attempt}: ${p.actual.impressions}/${p.expected.impressions} impressions, ${p.differences} differences`); },
    });
    const dupRows = await queryRows<{ d: string }>(ch,
      `SELECT sum(duplicates) AS d FROM ${identifier(sb.config.clickhouse.database)}.impression_counts FINAL`);
    const duplicatesRemoved = Number(dupRows[0]?.d ?? 0);

    const problems: string[] = [];
    if (!result.ok) problems.push(`ClickHouse differs from the topic's truth:\n${formatVerifyReport(result)}`);
    if (duplicatesRemoved !== truth.counts.duplicatesSent) problems.push(`duplicates removed ${duplicatesRemoved}, expected ${truth.counts.duplicatesSent}`);
    if (invalid !== 0) problems.push(`${invalid} invalid records on the topic (the ingest validates; expected 0)`);
    if (truth.counts.unique < uniqueAcked) problems.push(`events lost: k6 had ${uniqueAcked} distinct events acknowledged, the topic holds ${truth.counts.unique}`);
    for (const r of [ingest, readers, viewersResult]) {
      if (r === undefined) continue;
      for (const t of r.failedThresholds) problems.push(`k6 ${r.script}: threshold failed: ${t}`);
      if (r.failedThresholds.length === 0 && r.exitCode !== 0) problems.push(`k6 ${r.script} exited ${r.exitCode}`);
    }
    const exact = result.ok && duplicatesRemoved === truth.counts.duplicatesSent && truth.counts.unique >= uniqueAcked;

    const constantResults = [ingest, readers, viewersResult].filter((r): r is K6Result => r !== undefined);
    const thresholdsPassed = constant ? constantResults.every((r) => r.failedThresholds.length === 0 && r.exitCode === 0) : undefined;
    const table = resultsTable({
      options: args, viewers, k6Version: version, partitions: sb.config.partitions, windowMs: sb.config.windowMs,
      ingest, readers, live: viewersResult, viewersHoldMs, ramps, profile, records, truth, warmUpEvents, verified: result, duplicatesRemoved, thresholdsPassed, exact,
    });
    process.stdout.write(`\n${table}\n`);
    if (!args['no-docs']) appendToDocs(table, log);
    if (problems.length > 0) {
      process.stderr.write(`\nFAILED:\n- ${problems.join('\n- ')}\n${pipeline.logs()}\n`);
      return 1;
    }
    log('all thresholds passed; counts exact');
    return 0;
  } finally {
    await Promise.all([api?.stop(), pipeline.stopAll()]);
    await ch.close();
    await sb.cleanup();
    await stopStartedStack();
  }
}

/**
 * Stops the api (a clean exit writes its --cpu-prof profiles into `dir`, one per thread) and
 * summarises its main thread's (CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile); printed on stderr too.
 */
async function stopAndSummarise(api: RoleProcess, dir: string): Promise<ProfileSummary> {
  const pid = api.child.pid;
  await api.stop();
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && f.split('.').slice(-4, -2).join('.') === `${pid}.0`);
  if (file === undefined) throw new Error(`the api (pid ${pid}) wrote no main-thread .cpuprofile into ${dir}`);
  const summary = summariseProfile(readProfile(path.join(dir, file)));
  log(`api CPU profile ${path.join(dir, file)}:\n${profileTables(summary)}`);
  return summary;
}

/**
 * Waits until the api counts `viewers` live connections (its tally_live_connected_clients gauge),
 * at most VIEWERS_LEAD_MS: sessions that failed to connect by then are k6's to report, not a
 * reason to hold the ingest back.
 */
async function viewersConnected(live: Promise<K6Result>, viewers: number, metricsUrl: string, api: RoleProcess): Promise<void> {
  let liveEnded = false;
  live.then(() => { liveEnded = true; }, () => { liveEnded = true; });
  let connected = 0;
  await waitUntil(`${viewers} live viewers connected`, async () => {
    connected = (await fetchMetrics(metricsUrl, ['tally_live_connected_clients'])).tally_live_connected_clients;
    return connected >= viewers;
  }, {
    timeoutMs: VIEWERS_LEAD_MS, everyMs: 100,
    abortIf: () => roleExited([api]) ?? (liveEnded ? 'k6 live-viewers.js ended' : undefined),
  }).catch((err: unknown) => {
    if (roleExited([api]) !== undefined) throw err;
    log(`${err instanceof Error ? err.message : String(err)}; starting the ingest with ${connected} of ${viewers} viewers connected`);
  });
}

/**
 * The first requests of a fresh api process pay for code loading and JIT compilation of the ingest path,
 * and for the producer's first metadata: a few seconds of small batches (ids `<RUN_ID>-warmup-…`, of the
 * run's own advertisers, so the exactness check covers them) before k6 measures anything.
 */
async function warmUp(base: string, token: string, durationMs = 3_000): Promise<number> {
  const started = Date.now();
  let acked = 0;
  for (let i = 0; Date.now() - started < durationMs; i++) {
    const events = Array.from({ length: 50 }, (_, k) => ({
      impression_id: `${RUN_ID}-warmup-${i}-${k}`, ts: Date.now(), advertiser_id: `${RUN_ID}-adv-${k % ADVERTISERS}`,
      campaign_id: `cmp-${k % CAMPAIGNS}`, cost_micros: 1000, device: 'mobile',
    }));
    const res = await fetch(`${base}/api/v1/impressions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: JSON.stringify(events),
    });
    await res.arrayBuffer();
    if (res.status !== 202) throw new Error(`warm-up: POST /api/v1/impressions answered ${res.status}`);
    acked += events.length;
    await sleep(25); // pacing: small batches, a few dozen a second
  }
  return acked;
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`[load] ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
