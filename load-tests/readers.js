// k6: advertisers reading their counts while (or after) impressions arrive.
// GET /api/v1/counts and /api/v1/campaigns with an advertiser token; run by load-tests/run.ts.
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.BASE_URL;
const TOKEN = __ENV.READER_TOKEN;
const RUN_ID = __ENV.RUN_ID;
const RATE = Number(__ENV.RATE || 40);
const DURATION = __ENV.DURATION || '20s';
const ADVERTISERS = Number(__ENV.ADVERTISERS || 5);
const SUMMARY = __ENV.SUMMARY_PATH;

export const options = {
  scenarios: {
    readers: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(5, Math.ceil(RATE / 4)),
      maxVUs: RATE * 2,
      gracefulStop: '10s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    'http_req_duration{name:counts}': ['p(95)<1000'],
    'http_req_duration{name:campaigns}': ['p(95)<1000'],
    checks: ['rate>0.99'],
  },
};

export default function () {
  const adv = `${RUN_ID}-adv-${(__VU + __ITER) % ADVERTISERS}`;
  const params = (name) => ({ headers: { Authorization: `Bearer ${TOKEN}` }, tags: { name } });
  const granularity = ['window', 'hour', 'day'][__ITER % 3];
  const counts = http.get(`${BASE}/api/v1/counts?advertiser_id=${encodeURIComponent(adv)}&granularity=${granularity}`, params('counts'));
  check(counts, { 'counts 200': (r) => r.status === 200 });
  const campaigns = http.get(`${BASE}/api/v1/campaigns?advertiser_id=${encodeURIComponent(adv)}`, params('campaigns'));
  check(campaigns, { 'campaigns 200': (r) => r.status === 200 });
}

export function handleSummary(data) {
  const m = data.metrics;
  const v = (k, f) => (m[k] && m[k].values[f] !== undefined ? m[k].values[f] : 0);
  const lines = [`[readers] requests ${v('http_reqs', 'count')} (${v('http_reqs', 'rate').toFixed(1)}/s), failed ${(v('http_req_failed', 'rate') * 100).toFixed(2)} %, `
    + `p95 counts ${v('http_req_duration{name:counts}', 'p(95)').toFixed(1)} ms, campaigns ${v('http_req_duration{name:campaigns}', 'p(95)').toFixed(1)} ms`];
  for (const [metric, def] of Object.entries(m)) {
    for (const [expr, t] of Object.entries(def.thresholds || {})) lines.push(`[readers] threshold ${metric} ${expr}: ${t.ok ? 'ok' : 'FAILED'}`);
  }
  const out = { stdout: `${lines.join('\n')}\n` };
  if (SUMMARY) out[SUMMARY] = JSON.stringify(data, null, 2);
  return out;
}
