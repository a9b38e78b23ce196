/** The load test's results as a Markdown table (stdout and docs/benchmarks.md, "## k6 load tests"). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../server/src/config/index.js';
import type { GroundTruth, VerifyResult } from '../../server/src/tools/index.js';
import { profileTables, type ProfileSummary } from './cpu-profile.js';
import { metric, parseDurationS, type K6Result } from './k6.js';
import { goalTable, limitsByBatch } from './load-goals.js';
import { rampTable, type RampResult } from './ramp.js';

/** The command line's options, as the table describes the run. */
export interface LoadOptions {
  'ingest-rate': string;
  'ingest-duration': string;
  batch: string;
  'retry-p': string;
  'readers-rate': string;
  'readers-duration': string;
  'ramp-step-duration': string;
}

export interface LoadRun {
  options: LoadOptions;
  /** Live viewers asked for (0: none). */
  viewers: number;
  k6Version: string;
  partitions: number;
  windowMs: number;
  /** The constant-rate scenarios; undefined when the run was the ramp only. */
  ingest: K6Result | undefined;
  readers: K6Result | undefined;
  live: K6Result | undefined;
  ramps: RampResult[];
  /** The api's CPU profile over the whole run (--profile-api). */
  profile: ProfileSummary | undefined;
  /** How long the viewers stayed connected, for their updates per second. */
  viewersHoldMs: number;
  /** Records read back from the impressions topic, and the truth made of them. */
  records: number;
  truth: GroundTruth;
  warmUpEvents: number;
  verified: VerifyResult;
  duplicatesRemoved: number;
  /** Whether the constant-rate scenarios' k6 thresholds all passed; undefined when they did not run. */
  thresholdsPassed: boolean | undefined;
  exact: boolean;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const ms = (r: K6Result, name: string, field: string) => `${fmt(metric(r, name, field), 1)} ms`;
const p50p95 = (r: K6Result, name: string) => `${ms(r, name, 'med')} / ${ms(r, name, 'p(95)')}`;

function scenarioRow(name: string, r: K6Result, p95Metric: string): string {
  const reqs = metric(r, 'http_reqs', 'count');
  return `| ${name} | ${fmt(reqs)} | ${fmt(metric(r, 'http_reqs', 'rate'), 1)} | ${fmt(metric(r, p95Metric, 'p(95)'), 1)} ms `
    + `| ${fmt(metric(r, 'http_req_failed', 'rate') * 100, 2)} % | ${r.failedThresholds.length === 0 ? 'pass' : `FAIL (${r.failedThresholds.length})`} |`;
}

function liveSessions(r: K6Result): number {
  return metric(r, 'live_session_failed', 'passes') + metric(r, 'live_session_failed', 'fails');
}

function liveScenarioRow(r: K6Result | undefined): string[] {
  if (r === undefined) return [];
  return [`| live viewers (socket.io; sessions, updates/s received, p95 update delay) | ${fmt(liveSessions(r))} `
    + `| ${fmt(metric(r, 'live_updates', 'rate'), 1)} | ${fmt(metric(r, 'live_update_delay_ms', 'p(95)'), 1)} ms `
    + `| ${fmt(metric(r, 'live_session_failed', 'rate') * 100, 2)} % | ${r.failedThresholds.length === 0 && r.exitCode === 0 ? 'pass' : `FAIL (${r.failedThresholds.length})`} |`];
}

function ingestBreakdown(ingest: K6Result): string[] {
  return [
    '',
    '| ingest request, where the time goes | p50 / p95 |',
    '|---|---|',
    `| whole request (k6 http_req_duration) | ${p50p95(ingest, 'http_req_duration')} |`,
    `| produce → broker acknowledged all events (Server-Timing \`kafka\`) | ${p50p95(ingest, 'ingest_server_kafka_ms')} |`,
    `| split + validate (\`validate\`) | ${p50p95(ingest, 'ingest_server_validate_ms')} |`,
    `| read the body (\`body\`) | ${p50p95(ingest, 'ingest_server_body_ms')} |`,
    `| outside the handler (network, auth, queueing in the api) | ${p50p95(ingest, 'ingest_outside_handler_ms')} |`,
  ];
}

function liveBreakdown(r: K6Result | undefined, viewers: number, holdMs: number): string[] {
  if (r === undefined) return [];
  const sessions = liveSessions(r);
  const durS = Math.max(1, holdMs / 1000);
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
}

function constantScenarios(run: LoadRun, ingest: K6Result, readers: K6Result): string[] {
  const { options: o, viewers, live } = run;
  return [
    '',
    `\`npm run load\`: ingest ${o['ingest-rate']} req/s × ${o.batch} events for ${o['ingest-duration']} `
      + `(${Number(o['retry-p']) * 100} % of batches re-sent as client retries)`
      + `${viewers > 0 ? ` with ${viewers} live viewers connected to the socket.io feed throughout` : ''}, then readers ${o['readers-rate']} it/s `
      + `(counts + campaigns) for ${o['readers-duration']}; one aggregator, one sink, one \`tally api\`, ${run.partitions} partitions, window ${run.windowMs / 1000} s.`,
    '',
    '| scenario | requests | req/s | p95 | errors | thresholds |',
    '|---|---|---|---|---|---|',
    scenarioRow('ingest (POST /api/v1/impressions)', ingest, 'http_req_duration'),
    scenarioRow('readers (GET counts + campaigns)', readers, 'http_req_duration'),
    ...liveScenarioRow(live),
    ...ingestBreakdown(ingest),
    ...liveBreakdown(live, viewers, run.viewersHoldMs),
  ];
}

/** Per batch size: with several runs, each run's limit and the median run's table; with one, its table. */
function rampSection(run: LoadRun): string[] {
  if (run.ramps.length === 0) return [];
  const first = run.ramps[0].plan;
  return [
    '',
    `Ingest step ramp (load-tests/ingest-ramp.js): offered rates held ${run.options['ramp-step-duration']} each, up to the first step whose `
      + `p99 exceeds ${first.p99Ms} ms or where a request failed; one \`tally api\`, aggregator and sink paused during the ramp.`,
    ...limitsByBatch(run.ramps).flatMap((b) => [
      '',
      ...(b.limits.length > 1
        ? [`Batches of ${fmt(b.batch)}, ${b.limits.length} runs in turn with the other batch sizes: found limits ${b.limits.map((l) => fmt(l)).join(' · ')} events/s, median ${fmt(b.median)}; the median run:`, '']
        : []),
      rampTable(b.medianRun),
    ]),
  ];
}

function profileSection(profile: ProfileSummary | undefined): string[] {
  if (profile === undefined) return [];
  return ['', 'The api\'s CPU profile (node --cpu-prof, the whole process life):', '', profileTables(profile)];
}

/** The run's table: the scenarios, where the ingest time goes, the live viewers, the ramp, and the exactness check. */
export function resultsTable(run: LoadRun): string {
  const { k6Version, ingest, readers, truth, verified: result } = run;
  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const constantAcked = ingest === undefined ? 0 : metric(ingest, 'events_acked', 'count');
  const evRate = constantAcked / Math.max(1, parseDurationS(run.options['ingest-duration']));
  const rampAcked = run.ramps.reduce((n, r) => n + r.eventsAcked, 0);
  return [
    `### ${when}, ${k6Version.split(' ')[0] ?? 'k6'} ${k6Version.split(' ')[1] ?? ''} (${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? 'cpu'}, Node ${process.version})`,
    '',
    goalTable({ ramps: run.ramps, thresholdsPassed: run.thresholdsPassed, exact: run.exact }),
    ...(ingest !== undefined && readers !== undefined ? constantScenarios(run, ingest, readers) : []),
    ...rampSection(run),
    ...profileSection(run.profile),
    '',
    `| exactness | value |`,
    '|---|---|',
    ...(ingest === undefined ? [] : [`| events acknowledged (202) at the constant rate, all copies | ${fmt(constantAcked)} (${fmt(evRate)} events/s) |`]),
    ...(run.ramps.length === 0 ? [] : [`| events acknowledged (202) in the ramps | ${fmt(rampAcked)} |`]),
    `| records on \`impressions\` / unique / duplicates | ${fmt(run.records)} / ${fmt(truth.counts.unique)} / ${fmt(truth.counts.duplicatesSent)} (incl. ${fmt(run.warmUpEvents)} warm-up events) |`,
    `| ClickHouse FINAL impressions / spend (micros) | ${result.actual.impressions} / ${result.actual.spendMicros} (truth ${result.expected.impressions} / ${result.expected.spendMicros}) |`,
    `| rows (window × advertiser × campaign) | ${result.actual.rows} (truth ${result.expected.rows}), ${result.differences.length} differences |`,
    `| duplicates removed by the aggregator | ${fmt(run.duplicatesRemoved)} (on the topic ${fmt(truth.counts.duplicatesSent)}) |`,
    `| **exact** | **${run.exact ? 'yes' : 'NO'}** (verified after ${(result.elapsedMs / 1000).toFixed(1)} s) |`,
    '',
  ].join('\n');
}

/** Appends the run's table under "## k6 load tests" (created at the end if missing); keeps the rest. */
export function appendToDocs(table: string, log: (m: string) => void): void {
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
