/**
 * The ingest step ramp (load-tests/ingest-ramp.js): one k6 run per batch size, each a list of fixed
 * arrival rates held in turn; each step judged from k6's summary (p99 ≤ the bound, no failed
 * request, the offered rate actually offered), the found limit the highest step of the leading run
 * of met steps, and the results as a Markdown table.
 */
import os from 'node:os';
import { metric, runK6, type K6Result } from './k6.js';
import { cpuSeconds, reapedChildrenCpuSeconds } from './proc-cpu.js';

export interface RampPlan {
  /** Events per request. */
  batch: number;
  /** Offered rates in events/s, ascending. */
  steps: number[];
  /** How long each step is held. */
  stepS: number;
  /** A step is met when its p99 request latency is at most this. */
  p99Ms: number;
}

/** What one step of a ramp did, and whether it met the bound. */
export interface StepResult {
  offeredEventsPerS: number;
  /** Requests started in the step (by their start time) and answered by the end of the run. */
  requests: number;
  achievedEventsPerS: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  /** p99 of the Server-Timing `kafka` phase (produce until every event acknowledged) and of the time outside the handler. */
  kafkaP99Ms: number;
  outsideP99Ms: number;
  /** 'met' / 'not met' for the steps judged; 'not run' once an earlier step was not met (k6 aborted). */
  verdict: 'met' | 'not met' | 'not run';
  /** Why a step was not met, for the table. */
  why: string;
}

export interface RampResult {
  plan: RampPlan;
  steps: StepResult[];
  /** The highest offered rate of the leading met steps; 0 when the first step failed. */
  limitEventsPerS: number;
  /** True when every step was met: the limit lies at or above the last step. */
  limitAtTop: boolean;
  eventsAcked: number;
  /** CPU seconds (all threads) the api process, the broker and k6 used during the ramp, where /proc tells. */
  cpu: { apiS: number | undefined; brokerS: number | undefined; k6S: number | undefined };
  /** k6's exit code and the thresholds it reported failed (the abort at the first failing step). */
  k6: K6Result;
}

/** A step counts as offered when k6 started at least this share of its planned requests. */
const MIN_OFFERED_SHARE = 0.95;

/** Judges each step from the k6 summary, in order; after the first one not met, the rest are not run. */
export function judgeSteps(plan: RampPlan, value: (name: string, field: string) => number): StepResult[] {
  let failedBefore = false;
  return plan.steps.map((offered, k) => {
    const failed = value(`ingest_failed{step:${k}}`, 'passes');
    const requests = failed + value(`ingest_failed{step:${k}}`, 'fails');
    const planned = (offered / plan.batch) * plan.stepS;
    const step: StepResult = {
      offeredEventsPerS: offered,
      requests,
      achievedEventsPerS: value(`events_acked{step:${k}}`, 'count') / plan.stepS,
      p50Ms: value(`http_req_duration{step:${k}}`, 'med'),
      p99Ms: value(`http_req_duration{step:${k}}`, 'p(99)'),
      failures: failed,
      kafkaP99Ms: value(`ingest_server_kafka_ms{step:${k}}`, 'p(99)'),
      outsideP99Ms: value(`ingest_outside_handler_ms{step:${k}}`, 'p(99)'),
      verdict: 'not run',
      why: '',
    };
    if (failedBefore) return step;
    const why: string[] = [];
    if (requests < MIN_OFFERED_SHARE * planned) why.push(`k6 started ${requests} of ${Math.round(planned)} requests`);
    if (step.p99Ms > plan.p99Ms) why.push(`p99 > ${plan.p99Ms} ms`);
    if (failed > 0) why.push(`${failed} failed`);
    step.verdict = why.length === 0 ? 'met' : 'not met';
    step.why = why.join(', ');
    failedBefore = why.length > 0;
    return step;
  });
}

/** The highest offered rate of the leading run of met steps (0 if the first was not met). */
export function foundLimit(steps: readonly StepResult[]): { limitEventsPerS: number; limitAtTop: boolean } {
  let limit = 0;
  for (const s of steps) {
    if (s.verdict !== 'met') return { limitEventsPerS: limit, limitAtTop: false };
    limit = s.offeredEventsPerS;
  }
  return { limitEventsPerS: limit, limitAtTop: steps.length > 0 };
}

/** The processes whose CPU time a ramp reports. */
export interface RampPids {
  api: number | undefined;
  broker: number | undefined;
}

const cpuUsed = (pid: number | undefined, before: number | undefined): number | undefined => {
  const after = cpuSeconds(pid);
  return after === undefined || before === undefined ? undefined : after - before;
};

/**
 * Runs the ramp for one batch size; `env` carries BASE_URL, INGEST_TOKEN, RUN_ID and the data set.
 * `round` tells repeated ramps apart: each sends ids of its own, so none is a duplicate of another's.
 */
export async function runRamp(k6: string, plan: RampPlan, env: Record<string, string>, pids: RampPids, log: (m: string) => void, round = 0): Promise<RampResult> {
  const runId = `${env.RUN_ID}-ramp${plan.batch}-${round}`;
  const apiBefore = cpuSeconds(pids.api);
  const brokerBefore = cpuSeconds(pids.broker);
  // k6 is the one child of this process to exit during the ramp (the aggregator and sink stopped before it).
  const k6Before = reapedChildrenCpuSeconds();
  const result = await runK6(k6, 'ingest-ramp.js', {
    ...env, ID_PREFIX: runId, BATCH: String(plan.batch), STEPS: plan.steps.join(','),
    STEP_S: String(plan.stepS), P99_MS: String(plan.p99Ms),
  }, runId, log);
  const k6After = reapedChildrenCpuSeconds();
  const cpu = {
    apiS: cpuUsed(pids.api, apiBefore), brokerS: cpuUsed(pids.broker, brokerBefore),
    k6S: k6Before === undefined || k6After === undefined ? undefined : k6After - k6Before,
  };
  const steps = judgeSteps(plan, (name, field) => metric(result, name, field));
  const { limitEventsPerS, limitAtTop } = foundLimit(steps);
  log(`ramp, batches of ${plan.batch}: limit ${limitEventsPerS} events/s${limitAtTop ? ' (every step met)' : ''}; `
    + `k6 dropped ${metric(result, 'dropped_iterations', 'count')} iterations (no VU free), used up to ${metric(result, 'vus_max', 'value')} VUs`);
  return { plan, steps, limitEventsPerS, limitAtTop, eventsAcked: metric(result, 'events_acked', 'count'), cpu, k6: result };
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** One table per batch size: each step, then the found limit. */
export function rampTable(r: RampResult): string {
  const { plan } = r;
  // The steps k6 never reached (it aborted before them) are summed up in one line.
  const reached = r.steps.filter((s) => s.verdict !== 'not run' || s.requests > 0);
  const rows = reached.map((s) => `| ${fmt(s.offeredEventsPerS)} (${fmt(s.offeredEventsPerS / plan.batch, 1)} req/s) | `
    + `${fmt(s.achievedEventsPerS)} | ${fmt(s.requests)} | ${fmt(s.p50Ms, 1)} / ${fmt(s.p99Ms, 1)} ms `
    + `| ${fmt(s.kafkaP99Ms, 1)} / ${fmt(s.outsideP99Ms, 1)} ms | ${fmt(s.failures)} | `
    + `${s.verdict === 'met' ? 'met' : s.verdict === 'not met' ? `**not met** (${s.why})` : 'not judged (after the first step not met; k6 aborted)'} |`);
  const skipped = r.steps.length - reached.length;
  if (skipped > 0) {
    const from = r.steps[reached.length].offeredEventsPerS;
    rows.push(`| ${fmt(from)} … ${fmt(plan.steps[plan.steps.length - 1])} | – | – | – | – | – | not run (${skipped} steps after the first step not met) |`);
  }
  const limit = r.limitEventsPerS === 0
    ? `none: the first step (${fmt(plan.steps[0])} events/s) was not met`
    : `**${fmt(r.limitEventsPerS)} events/s**${r.limitAtTop ? ' (every step met: the limit is at or above it)' : ''}`;
  return [
    `| batches of ${fmt(plan.batch)}: offered events/s | achieved events/s | requests | p50 / p99 | p99 kafka / outside the handler | failed `
      + `| p99 ≤ ${plan.p99Ms} ms, none failed |`,
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Highest sustained rate, batches of ${fmt(plan.batch)}: ${limit}.${cpuLine(r)}`,
  ].join('\n');
}

/**
 * CPU per acknowledged event: what the ramp cost the api process, the broker and k6, whatever else
 * ran; and what the three together would need at the first step not met, in cores of this machine.
 */
function cpuLine(r: RampResult): string {
  const perEventUs = (s: number) => (s * 1e6) / Math.max(1, r.eventsAcked);
  const per = (s: number | undefined, who: string) => (s === undefined ? [] : [`${who} ${fmt(s, 1)} s (${fmt(perEventUs(s), 1)} µs per event)`]);
  const parts = [...per(r.cpu.apiS, 'the api process'), ...per(r.cpu.brokerS, 'the broker'), ...per(r.cpu.k6S, 'k6')];
  if (parts.length === 0) return '';
  const { apiS, brokerS, k6S } = r.cpu;
  const notMet = r.steps.find((s) => s.verdict === 'not met');
  const togetherUs = apiS === undefined || brokerS === undefined || k6S === undefined ? undefined : perEventUs(apiS + brokerS + k6S);
  const cores = togetherUs === undefined || notMet === undefined ? ''
    : ` Together ${fmt(togetherUs, 1)} µs per event: ${fmt((togetherUs * notMet.offeredEventsPerS) / 1e6, 2)} cores at the first step not met (${fmt(notMet.offeredEventsPerS)} events/s), of the machine's ${os.cpus().length}.`;
  return ` CPU time over the ramp's ${fmt(r.eventsAcked)} acknowledged events: ${parts.join(', ')}.${cores}`;
}
