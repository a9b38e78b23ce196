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
 * 4. the truth: the impressions topic read back to its end, unique valid events grouped by
 *    (window, advertiser, campaign); verify() compares ClickHouse FINAL with it, and the
 *    duplicates column with the copies found on the topic;
 * 5. a results table on stdout, appended to docs/benchmarks.md under "## k6 load tests".
 * Exit 1 if any k6 threshold failed or the counts are not exact.
 *
 * Options: --ingest-rate 50 --ingest-duration 30s --batch 100 --retry-p 0.1
 *          --viewers 100 (0: no live viewers) --readers-rate 40 --readers-duration 20s --no-docs
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { TokenStore } from '../server/src/auth/index.js';
import { createClickHouse, identifier, queryRows } from '../server/src/clickhouse/index.js';
import { repoRoot } from '../server/src/config/index.js';
import { parseImpression } from '../server/src/impression/index.js';
import { ensureK6, K6_VERSION } from '../server/src/stack/k6.js';
import {
  emptyDeadLetters, formatVerifyReport, readTopicToEnd, truthRowKey, verify,
  type GroundTruth, type TruthRow,
} from '../server/src/tools/index.js';
import { createSandbox, eventually, freePort, RoleProcess, stopStartedStack, useStack, type Sandbox } from '../test/kit/harness.js';
import { Pipeline } from '../test/kit/pipeline.js';

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
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(`usage: npm run load -- [options]

Real k6 (built once with go install, cached) against the local stack: HTTP ingest at a constant
arrival rate with client retries, socket.io live viewers, REST readers; then the counts in
ClickHouse must equal the unique events on the topic. Exit 1 on a failed threshold or a mismatch.

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
`);
  process.exit(0);
}

const log = (m: string) => process.stderr.write(`[load] ${m}\n`);
const loadDir = path.join(repoRoot, 'load-tests');
const RUN_ID = `k6${crypto.randomBytes(3).toString('hex')}`;
const ADVERTISERS = 5;
const CAMPAIGNS = 4;
/** Live viewers connect spread over this long, and the ingest starts this long after them (k6 start-up included). */
const VIEWERS_RAMP_MS = 3_000;
const VIEWERS_LEAD_MS = VIEWERS_RAMP_MS + 3_000;
/** Viewers stay connected this long after the ingest's planned end (its last answers, the last windows' updates). */
const VIEWERS_TAIL_MS = 10_000;

interface K6Metric {
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}
interface K6Summary {
  metrics: Record<string, K6Metric>;
}
interface K6Result {
  script: string;
  exitCode: number | null;
  summary: K6Summary;
  failedThresholds: string[];
}

/** Runs one k6 script to its end (k6 bounds it: duration + gracefulStop); its summary JSON back. */
async function runK6(k6: string, script: string, env: Record<string, string>): Promise<K6Result> {
  const summaryPath = path.join(os.tmpdir(), `tally-k6-${RUN_ID}-${script.replace(/\W/g, '_')}.json`);
  fs.rmSync(summaryPath, { force: true });
  log(`k6 run ${script} (${Object.entries(env).filter(([k]) => !k.endsWith('TOKEN')).map(([k, v]) => `${k}=${v}`).join(' ')})`);
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(k6, ['run', '--quiet', '--no-usage-report', path.join(loadDir, script)], {
      cwd: repoRoot,
      env: { ...process.env, ...env, SUMMARY_PATH: summaryPath, K6_NO_USAGE_REPORT: 'true' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
  if (!fs.existsSync(summaryPath)) throw new Error(`k6 ${script} exited ${exitCode} without writing its summary`);
  const summary = JSON.parse(fs.readFileSync(summaryPath, 'utf8')) as K6Summary;
  fs.rmSync(summaryPath, { force: true });
  const failedThresholds: string[] = [];
  for (const [name, m] of Object.entries(summary.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds ?? {})) if (!t.ok) failedThresholds.push(`${name} ${expr}`);
  }
  return { script, exitCode, summary, failedThresholds };
}

const metric = (r: K6Result, name: string, field: string): number => r.summary.metrics[name]?.values[field] ?? 0;

/** The truth of what reached the impressions topic: unique valid events by (window, advertiser, campaign). */
async function truthFromTopic(sb: Sandbox): Promise<{ truth: GroundTruth; records: number; invalid: number }> {
  const windowMs = sb.config.windowMs;
  const seen = new Set<string>();
  const rows = new Map<string, TruthRow>();
  let records = 0;
  let invalid = 0;
  await readTopicToEnd(sb.config.kafka.brokers, sb.config.topics.impressions, (m) => {
    records++;
    const p = parseImpression(m.value);
    if (!p.ok) {
      invalid++;
      return;
    }
    const e = p.impression;
    if (seen.has(e.impressionId)) return;
    seen.add(e.impressionId);
    const windowStart = Math.floor(e.ts / windowMs) * windowMs;
    const k = truthRowKey({ windowStart, advertiserId: e.advertiserId, campaignId: e.campaignId });
    const row = rows.get(k) ?? { windowStart, advertiserId: e.advertiserId, campaignId: e.campaignId, impressions: 0, spendMicros: 0 };
    row.impressions++;
    row.spendMicros += e.costMicros;
    rows.set(k, row);
  }, { timeoutMs: 120_000, isolation: 'read_uncommitted' });
  const sorted = [...rows.values()].sort((a, b) => a.windowStart - b.windowStart
    || (a.advertiserId < b.advertiserId ? -1 : a.advertiserId > b.advertiserId ? 1 : 0)
    || (a.campaignId < b.campaignId ? -1 : a.campaignId > b.campaignId ? 1 : 0));
  const generatedAt = new Date().toISOString();
  const valid = records - invalid;
  const truth: GroundTruth = {
    windowMs,
    idPrefix: `${RUN_ID}-`,
    generatedAt,
    counts: { sent: records, valid, unique: seen.size, duplicatesSent: valid - seen.size, lateWithinHorizon: 0 },
    deadLetters: emptyDeadLetters(),
    rows: sorted,
    phases: [{ idPrefix: `${RUN_ID}-`, seed: 0, generatedAt }],
  };
  return { truth, records, invalid };
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

async function main(): Promise<number> {
  const config = await useStack();
  const k6 = await ensureK6(config.cacheDir, log);
  const k6Version = await new Promise<string>((resolve) => {
    const c = spawn(k6, ['version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    c.on('exit', () => resolve(out.trim().split('\n')[0] || K6_VERSION));
  });
  log(k6Version);

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

    pipeline.startAggregator();
    pipeline.startSink();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    api = new RoleProcess('api', {
      ...sb.env,
      TALLY_HTTP_HOST: '127.0.0.1',
      TALLY_HTTP_PORT: String(port),
      // The per-token limits protect production; a load test of one token would only measure 429s.
      TALLY_INGEST_RATE_LIMIT_PER_MIN: '1000000',
      TALLY_API_RATE_LIMIT_PER_MIN: '1000000',
      // Every viewer shares one token here: its socket and snapshot budgets must hold them all.
      TALLY_LIVE_SOCKETS_PER_TOKEN: '1000000',
      TALLY_LIVE_SNAPSHOTS_PER_MIN_PER_TOKEN: '1000000',
    }, ['--no-web-build']);
    const apiProc = api;
    await eventually('tally api /readyz', async () => {
      if (!apiProc.alive) throw new Error(`api exited:\n${apiProc.log()}`);
      const res = await fetch(`${base}/readyz`);
      // /readyz does not wait for the live feed, which attaches in the background and first reads
      // impression-counts to its end: the viewers need it, and measuring the ingest while the api
      // still does that start-up work would count the start-up in the ingest's latency.
      return res.ok && ((await res.json()) as { liveFeed?: boolean }).liveFeed === true;
    }, 90_000, 250);
    log(`stack ready: api ${base}, topics ${sb.env.TALLY_TOPIC_PREFIX}*, database ${sb.config.clickhouse.database}, window ${sb.config.windowMs} ms`);
    const warmUpEvents = await warmUp(base, ingestToken);
    log(`warm-up: ${warmUpEvents} events acknowledged (not measured; part of the truth)`);

    const common = { BASE_URL: base, RUN_ID, ADVERTISERS: String(ADVERTISERS), CAMPAIGNS: String(CAMPAIGNS) };
    const ingestMs = parseDurationS(args['ingest-duration']) * 1000;
    const live = viewers > 0
      ? runK6(k6, 'live-viewers.js', {
        ...common, VIEWER_TOKEN: viewerToken, VIEWERS: String(viewers), RAMP_MS: String(VIEWERS_RAMP_MS),
        HOLD_MS: String(VIEWERS_LEAD_MS + ingestMs + VIEWERS_TAIL_MS), OUT_OF_ORDERNESS_MS: String(sb.config.outOfOrdernessMs),
      })
      : undefined;
    live?.catch(() => undefined);
    if (live) await new Promise((r) => setTimeout(r, VIEWERS_LEAD_MS));
    const ingest = await runK6(k6, 'ingest.js', {
      ...common, INGEST_TOKEN: ingestToken, RATE: args['ingest-rate'], DURATION: args['ingest-duration'],
      BATCH: args.batch, RETRY_P: args['retry-p'],
    });
    const viewersResult = await live;
    const readers = await runK6(k6, 'readers.js', {
      ...common, READER_TOKEN: readerToken, RATE: args['readers-rate'], DURATION: args['readers-duration'],
    });

    log('reading the impressions topic back for the truth');
    const { truth, records, invalid } = await truthFromTopic(sb);
    const uniqueAcked = metric(ingest, 'events_unique_acked', 'count');
    log(`topic: ${records} records, ${truth.counts.unique} unique, ${truth.counts.duplicatesSent} duplicates, ${invalid} invalid; k6 saw ${uniqueAcked} unique events acknowledged`);
    log('verifying ClickHouse FINAL against the truth');
    const result = await verify(sb.config, truth, {
      timeoutMs: 120_000, stableMs: 2_000,
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

    const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const rowOf = (name: string, r: K6Result, p95Metric: string) => {
      const reqs = metric(r, 'http_reqs', 'count');
      return `| ${name} | ${fmt(reqs)} | ${fmt(metric(r, 'http_reqs', 'rate'), 1)} | ${fmt(metric(r, p95Metric, 'p(95)'), 1)} ms `
        + `| ${fmt(metric(r, 'http_req_failed', 'rate') * 100, 2)} % | ${r.failedThresholds.length === 0 ? 'pass' : `FAIL (${r.failedThresholds.length})`} |`;
    };
    const evRate = metric(ingest, 'events_acked', 'count') / Math.max(1, parseDurationS(args['ingest-duration']));
    const ms = (r: K6Result, name: string, field: string) => `${fmt(metric(r, name, field), 1)} ms`;
    const p50p95 = (r: K6Result, name: string) => `${ms(r, name, 'med')} / ${ms(r, name, 'p(95)')}`;
    const ingestBreakdown = [
      '',
      '| ingest request, where the time goes | p50 / p95 |',
      '|---|---|',
      `| whole request (k6 http_req_duration) | ${p50p95(ingest, 'http_req_duration')} |`,
      `| produce → broker acknowledged all events (Server-Timing \`kafka\`) | ${p50p95(ingest, 'ingest_server_kafka_ms')} |`,
      `| split + validate (\`validate\`) | ${p50p95(ingest, 'ingest_server_validate_ms')} |`,
      `| read the body (\`body\`) | ${p50p95(ingest, 'ingest_server_body_ms')} |`,
      `| outside the handler (network, auth, queueing in the api) | ${p50p95(ingest, 'ingest_outside_handler_ms')} |`,
    ];
    const liveRows = (r: K6Result | undefined): string[] => {
      if (r === undefined) return [];
      const sessions = metric(r, 'live_session_failed', 'passes') + metric(r, 'live_session_failed', 'fails');
      const durS = Math.max(1, (VIEWERS_LEAD_MS + parseDurationS(args['ingest-duration']) * 1000 + VIEWERS_TAIL_MS) / 1000);
      return [
        '',
        `| live viewers (${viewers} socket.io sessions, during the ingest) | p50 / p95 |`,
        '|---|---|',
        `| connect + auth → first snapshot | ${p50p95(r, 'live_connect_ms')} |`,
        `| update delay (serverTime → frame read by k6) | ${p50p95(r, 'live_update_delay_ms')} |`,
        `| gap between two updates of a viewer | ${p50p95(r, 'live_update_gap_ms')} |`,
        `| freshness (now − watermark − out-of-orderness, updates with rows) | ${p50p95(r, 'live_freshness_ms')} |`,
        `| updates received / rows / per viewer per second | ${fmt(metric(r, 'live_updates', 'count'))} / ${fmt(metric(r, 'live_update_rows', 'count'))} / `
          + `${fmt(metric(r, 'live_updates', 'count') / Math.max(1, sessions) / durS, 2)} |`,
        `| sessions failed (refused, denied, dropped, no update) | ${fmt(metric(r, 'live_session_failed', 'passes'))} of ${fmt(sessions)}, ${fmt(metric(r, 'live_errors', 'count'))} errors |`,
      ];
    };
    const liveRow = (r: K6Result | undefined): string[] => {
      if (r === undefined) return [];
      const sessions = metric(r, 'live_session_failed', 'passes') + metric(r, 'live_session_failed', 'fails');
      return [`| live viewers (socket.io; sessions, updates/s received, p95 update delay) | ${fmt(sessions)} `
        + `| ${fmt(metric(r, 'live_updates', 'rate'), 1)} | ${fmt(metric(r, 'live_update_delay_ms', 'p(95)'), 1)} ms `
        + `| ${fmt(metric(r, 'live_session_failed', 'rate') * 100, 2)} % | ${r.failedThresholds.length === 0 && r.exitCode === 0 ? 'pass' : `FAIL (${r.failedThresholds.length})`} |`];
    };
    const table = [
      `### ${when}, ${k6Version.split(' ')[0] ?? 'k6'} ${k6Version.split(' ')[1] ?? ''} (${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'cpu'}, Node ${process.version})`,
      '',
      `\`npm run load\`: ingest ${args['ingest-rate']} req/s × ${args.batch} events for ${args['ingest-duration']} `
        + `(${Number(args['retry-p']) * 100} % of batches re-sent as client retries)`
        + `${viewers > 0 ? ` with ${viewers} live viewers connected to the socket.io feed throughout` : ''}, then readers ${args['readers-rate']} it/s `
        + `(counts + campaigns) for ${args['readers-duration']}; one aggregator, one sink, one \`tally api\`, ${sb.config.partitions} partitions, window ${sb.config.windowMs / 1000} s.`,
      '',
      '| scenario | requests | req/s | p95 | errors | thresholds |',
      '|---|---|---|---|---|---|',
      rowOf('ingest (POST /api/v1/impressions)', ingest, 'http_req_duration'),
      rowOf('readers (GET counts + campaigns)', readers, 'http_req_duration'),
      ...liveRow(viewersResult),
      ...ingestBreakdown,
      ...liveRows(viewersResult),
      '',
      `| exactness | value |`,
      '|---|---|',
      `| events acknowledged (202), all copies | ${fmt(metric(ingest, 'events_acked', 'count'))} (${fmt(evRate)} events/s) |`,
      `| records on \`impressions\` / unique / duplicates | ${fmt(records)} / ${fmt(truth.counts.unique)} / ${fmt(truth.counts.duplicatesSent)} (incl. ${fmt(warmUpEvents)} warm-up events) |`,
      `| ClickHouse FINAL impressions / spend (micros) | ${result.actual.impressions} / ${result.actual.spendMicros} (truth ${result.expected.impressions} / ${result.expected.spendMicros}) |`,
      `| rows (window × advertiser × campaign) | ${result.actual.rows} (truth ${result.expected.rows}), ${result.differences.length} differences |`,
      `| duplicates removed by the aggregator | ${fmt(duplicatesRemoved)} (on the topic ${fmt(truth.counts.duplicatesSent)}) |`,
      `| **exact** | **${exact ? 'yes' : 'NO'}** (verified after ${(result.elapsedMs / 1000).toFixed(1)} s) |`,
      '',
    ].join('\n');
    process.stdout.write(`\n${table}\n`);
    if (!args['no-docs']) appendToDocs(table);
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
    await new Promise((r) => setTimeout(r, 25));
  }
  return acked;
}

function parseDurationS(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d);
  if (!m) return Number(d) || 1;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : n * 3600;
}

/** Appends the run's table under "## k6 load tests" (created at the end if missing); keeps the rest. */
function appendToDocs(table: string): void {
  const file = path.join(repoRoot, 'docs/benchmarks.md');
  const heading = '## k6 load tests';
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  if (!text.includes(`\n${heading}\n`)) {
    text = `${text.trimEnd()}\n\n${heading}\n\nMeasured by \`npm run load\` (load-tests/): real k6 over loopback against the local stack; `
      + 'the counts are then read back from ClickHouse and compared with the unique events found on the `impressions` topic. '
      + 'Newest run last.\n';
  }
  const start = text.indexOf(`\n${heading}\n`) + 1;
  const next = text.indexOf('\n## ', start + heading.length);
  const insertAt = next === -1 ? text.length : next + 1;
  const before = text.slice(0, insertAt).trimEnd();
  const after = text.slice(insertAt);
  fs.writeFileSync(file, `${before}\n\n${table.trimEnd()}\n${after ? `\n${after}` : ''}`);
  log(`appended the results to ${path.relative(repoRoot, file)}`);
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`[load] ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
