// k6: HTTP ingest at a step ramp of arrival rates, to find the highest rate one API process sustains.
// Run by load-tests/run.ts (npm run load); every knob comes from the environment it sets.
//
// STEPS is a list of offered rates in events/s; each is held STEP_S seconds as a fixed request rate
// (events/s ÷ BATCH), one ramping-arrival-rate scenario jumping from step to step. Every request is
// tagged with its step (by when it started), so the summary has each step's latency, failures and
// acknowledged events. A step is met when its p99 is ≤ P99_MS and no request failed; the run aborts
// a few seconds after the end of the first step that is not (thresholds with abortOnFail), so the
// steps after it never load the machine. The orchestrator judges every step again from the summary.
//
// Event ids are `${ID_PREFIX}-${__VU}-${__ITER}-${i}`, never re-sent: no duplicates here (the constant
// rate scenario, load-tests/ingest.js, sends those). The orchestrator reads the topic back for the truth.
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { serverPhases } from './server-timing.js';

const BASE = __ENV.BASE_URL;
const TOKEN = __ENV.INGEST_TOKEN;
const ID_PREFIX = __ENV.ID_PREFIX;
const RUN_ID = __ENV.RUN_ID;
const BATCH = Number(__ENV.BATCH || 100);
const STEPS = (__ENV.STEPS || '10000,20000,30000').split(',').map(Number);
const STEP_S = Number(__ENV.STEP_S || 10);
const P99_MS = Number(__ENV.P99_MS || 200);
const ADVERTISERS = Number(__ENV.ADVERTISERS || 5);
const CAMPAIGNS = Number(__ENV.CAMPAIGNS || 4);
const SUMMARY = __ENV.SUMMARY_PATH;
/** Threshold evaluation (every ~2 s) waits this long past a step's end, for its last answers. */
const JUDGE_AFTER_S = 3;

const eventsAcked = new Counter('events_acked');
const requestsFailed = new Rate('ingest_failed');
// Where a step's time goes: until the broker acknowledged every event (Server-Timing `kafka`), and
// outside the handler (network, token check, queueing in the api's event loop).
const serverKafka = new Trend('ingest_server_kafka_ms', true);
const outsideHandler = new Trend('ingest_outside_handler_ms', true);

const requestRates = STEPS.map((eventsPerS) => eventsPerS / BATCH);
const maxRate = Math.max(...requestRates);

const thresholds = {};
STEPS.forEach((_, k) => {
  const judgeAt = `${(k + 1) * STEP_S + JUDGE_AFTER_S}s`;
  // Submetrics per step: each needs a threshold to appear in the summary.
  thresholds[`http_req_duration{step:${k}}`] = [{ threshold: `p(99)<=${P99_MS}`, abortOnFail: true, delayAbortEval: judgeAt }];
  thresholds[`ingest_failed{step:${k}}`] = [{ threshold: 'rate==0', abortOnFail: true, delayAbortEval: judgeAt }];
  thresholds[`events_acked{step:${k}}`] = ['count>=0'];
  thresholds[`ingest_server_kafka_ms{step:${k}}`] = ['p(99)>=0'];
  thresholds[`ingest_outside_handler_ms{step:${k}}`] = ['p(99)>=0'];
});

export const options = {
  discardResponseBodies: false,
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
  scenarios: {
    ramp: {
      executor: 'ramping-arrival-rate',
      startRate: requestRates[0],
      timeUnit: '1s',
      // A jump to each step's rate (0 s), then held: fixed arrival rates, step after step.
      stages: requestRates.flatMap((rate) => [{ target: rate, duration: '0s' }, { target: rate, duration: `${STEP_S}s` }]),
      // VUs for 2 s of requests in flight at the first step, more as the rate needs them (up to 1 s
      // in flight at the top rate: a step whose answers take longer fails on p99 anyway). Not more
      // at first: k6 takes its VUs in turn, so each VU's keep-alive connection idles VUs ÷ rate
      // seconds, and one idle for the api's keep-alive timeout (Node's 5 s) is closed by it just as
      // k6 may write the next request on it. Not fewer: VUs started mid-step come late on a busy machine.
      preAllocatedVUs: Math.max(4, Math.ceil(2 * requestRates[0])),
      maxVUs: Math.max(10, Math.ceil(2 * requestRates[0]), Math.ceil(maxRate)),
      gracefulStop: '5s',
    },
  },
  thresholds,
};

/** Deterministic 32-bit hash (FNV-1a) of a string. */
function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

// Each event's text after its id and ts, per index in the batch, built once: the request body is then
// a few string concatenations per event, so k6 (on the same two cores) spends little CPU offering the load.
const TAILS = [];
const TS_OFFSETS = [];
for (let i = 0; i < BATCH; i++) {
  const h = hash(`${RUN_ID}-${i}`);
  TS_OFFSETS.push(h % 2000);
  TAILS.push(`,"advertiser_id":"${RUN_ID}-adv-${h % ADVERTISERS}","campaign_id":"cmp-${(h >>> 8) % CAMPAIGNS}",`
    + `"cost_micros":${(h >>> 4) % 5000},"device":"mobile"}`);
}

function body(idPrefix, now) {
  let s = '[';
  for (let i = 0; i < BATCH; i++) {
    if (i > 0) s += ',';
    s += `{"impression_id":"${idPrefix}-${i}","ts":${now - TS_OFFSETS[i]}${TAILS[i]}`;
  }
  return `${s}]`;
}

const params = { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` }, tags: { name: 'POST /api/v1/impressions' } };

export default function () {
  const now = Date.now();
  const step = String(Math.min(STEPS.length - 1, Math.floor((now - exec.scenario.startTime) / (STEP_S * 1000))));
  const res = http.post(`${BASE}/api/v1/impressions`, body(`${ID_PREFIX}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`, now),
    { headers: params.headers, tags: { ...params.tags, step } });
  const ok = res.status === 202 && res.json('accepted') === BATCH && res.json('rejected') === 0;
  requestsFailed.add(!ok, { step });
  const phases = serverPhases(res);
  if (phases !== undefined) {
    serverKafka.add(phases.kafka, { step });
    outsideHandler.add(phases.outside, { step });
  }
  if (ok) eventsAcked.add(BATCH, { step });
}

export function handleSummary(data) {
  const out = { stdout: '' };
  if (SUMMARY) out[SUMMARY] = JSON.stringify(data, null, 2);
  return out;
}
