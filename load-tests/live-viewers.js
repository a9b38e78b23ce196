// k6: dashboard viewers holding the socket.io live feed open while impressions arrive.
// Run by load-tests/run.ts (npm run load) next to ingest.js; every knob comes from the environment.
//
// k6 has no socket.io client, so each VU speaks socket.io v4 over engine.io v4 by hand on the
// websocket transport (k6/websockets, the event-loop WebSocket of k6 v1):
//   GET /socket.io/?EIO=4&transport=websocket  → upgrade
//   server  0{"sid":…,"pingInterval":…}          engine.io open
//   client  40{"token":…,"advertiserId":…}       socket.io CONNECT to "/" with the auth payload
//   server  40{"sid":…}  or  44{"message":…}     connected, or refused (unauthorized/forbidden/unavailable)
//   server  42["snapshot",{…}]                    the view's snapshot, then 42["update",{…}] ≤ 4 per second
//   server  2  → client 3                         engine.io heartbeat (ping/pong)
//   client  41, close                             socket.io disconnect at the end
// Anything else that ends a session early (a close, 41 from the server, `denied`) is an error.
//
// Metrics (all per viewer session, k6 custom metrics):
//   live_connect_ms        new WebSocket → first snapshot (upgrade, engine.io open, token check, snapshot)
//   live_update_delay_ms   frame read by k6 − the update's serverTime (when the server flushed it); same clock
//   live_update_gap_ms     time between two consecutive updates of one viewer (the feed's cadence; ~260 ms when rows change)
//   live_freshness_ms      for updates carrying rows: frame read − (watermark + out-of-orderness), i.e. how far
//                          the newest committed event time shown lags the wall clock (event → Kafka →
//                          aggregator transaction → live feed → socket); approximate: events are back-dated ≤ 2 s
//   live_updates, live_update_rows, live_snapshots, live_messages
//   live_session_failed    rate of sessions with an error (refused, denied, dropped, no snapshot, no update)
//   live_errors            count of errors, tagged with `kind`
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';

const BASE = __ENV.BASE_URL;
const TOKEN = __ENV.VIEWER_TOKEN;
const RUN_ID = __ENV.RUN_ID;
const VIEWERS = Number(__ENV.VIEWERS || 100);
const ADVERTISERS = Number(__ENV.ADVERTISERS || 5);
/** Viewers connect spread over this many ms (VU i at i × RAMP_MS / VIEWERS). */
const RAMP_MS = Number(__ENV.RAMP_MS || 3000);
/** Every viewer disconnects HOLD_MS after the scenario started. */
const HOLD_MS = Number(__ENV.HOLD_MS || 45000);
const OUT_OF_ORDERNESS_MS = Number(__ENV.OUT_OF_ORDERNESS_MS || 5000);
const SUMMARY = __ENV.SUMMARY_PATH;

const connectMs = new Trend('live_connect_ms', true);
const updateDelayMs = new Trend('live_update_delay_ms', true);
const updateGapMs = new Trend('live_update_gap_ms', true);
const freshnessMs = new Trend('live_freshness_ms', true);
const updates = new Counter('live_updates');
const updateRows = new Counter('live_update_rows');
const snapshots = new Counter('live_snapshots');
const messages = new Counter('live_messages');
const sessionFailed = new Rate('live_session_failed');
const errors = new Counter('live_errors');

export const options = {
  scenarios: {
    viewers: {
      executor: 'per-vu-iterations',
      vus: VIEWERS,
      iterations: 1,
      maxDuration: `${Math.ceil((HOLD_MS + 30000) / 1000)}s`,
      gracefulStop: '10s',
    },
  },
  thresholds: {
    live_session_failed: ['rate<0.01'],
    live_connect_ms: ['p(95)<3000'],
    live_update_delay_ms: ['p(95)<1000'],
    // A pipeline that stops committing (aggregator or feed stuck) shows here first; generous for a busy machine.
    live_freshness_ms: ['p(95)<5000'],
    checks: ['rate>0.99'],
  },
};

export default function () {
  const offset = Math.floor(((__VU - 1) * RAMP_MS) / VIEWERS);
  const advertiserId = `${RUN_ID}-adv-${(__VU - 1) % ADVERTISERS}`;
  const url = `${BASE.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  let failed = false;
  const fail = (kind, detail) => {
    errors.add(1, { kind });
    if (!failed) console.warn(`viewer ${__VU}: ${kind}${detail ? `: ${detail}` : ''}`);
    failed = true;
  };

  setTimeout(() => {
    const started = Date.now();
    let snapshotAt = 0;
    let lastUpdateAt = 0;
    let nUpdates = 0;
    let closing = false;
    const ws = new WebSocket(url, null, { tags: { name: 'socket.io' } });
    const endTimer = setTimeout(() => {
      closing = true;
      if (ws.readyState === 1) ws.send('41'); // socket.io disconnect, then close the transport
      ws.close();
    }, Math.max(1000, HOLD_MS - offset));

    ws.addEventListener('message', (e) => {
      messages.add(1);
      const data = e.data;
      const at = e.timestamp; // when k6 read the frame (ms), not when the JS ran
      if (data === '2') { ws.send('3'); return; } // engine.io ping → pong
      if (data.startsWith('0')) { ws.send(`40${JSON.stringify({ token: TOKEN, advertiserId })}`); return; }
      if (data.startsWith('40')) return; // socket.io connected
      if (data.startsWith('44')) { fail('refused', data.slice(2)); closing = true; ws.close(); return; }
      if (data.startsWith('41')) { if (!closing) fail('server_disconnect'); return; }
      if (!data.startsWith('42')) return; // 1 (close), 6 (noop): nothing to do
      let name;
      let payload;
      try {
        [name, payload] = JSON.parse(data.slice(2));
      } catch (_err) {
        fail('bad_frame', data.slice(0, 80));
        return;
      }
      if (name === 'snapshot') {
        snapshots.add(1);
        if (snapshotAt === 0) {
          snapshotAt = at;
          connectMs.add(at - started);
          check(payload, { 'snapshot of the requested advertiser': (s) => s.advertiserId === advertiserId && Array.isArray(s.rows) });
        }
      } else if (name === 'update') {
        updates.add(1);
        nUpdates++;
        const rows = payload.rows || [];
        updateRows.add(rows.length);
        updateDelayMs.add(Math.max(0, at - payload.serverTime));
        if (lastUpdateAt > 0) updateGapMs.add(at - lastUpdateAt);
        lastUpdateAt = at;
        if (rows.length > 0 && payload.watermark > 0) freshnessMs.add(Math.max(0, at - (payload.watermark + OUT_OF_ORDERNESS_MS)));
        if (rows.some((r) => r.advertiserId !== advertiserId)) fail('foreign_rows');
      } else if (name === 'denied') {
        fail('denied', JSON.stringify(payload));
      }
    });
    ws.addEventListener('error', (e) => {
      if (!closing) fail('ws_error', e.error);
    });
    ws.addEventListener('close', () => {
      clearTimeout(endTimer);
      if (!closing) fail('dropped', `after ${Date.now() - started} ms`);
      if (snapshotAt === 0 && !failed) fail('no_snapshot');
      const gotUpdates = check(nUpdates, { 'viewer received updates': (n) => n > 0 });
      if (!gotUpdates && !failed) fail('no_update');
      sessionFailed.add(failed);
    });
  }, offset);
}

export function handleSummary(data) {
  const m = data.metrics;
  const v = (k, f) => (m[k] && m[k].values[f] !== undefined ? m[k].values[f] : 0);
  const lines = [
    `[live] sessions ${v('live_session_failed', 'passes') + v('live_session_failed', 'fails')}, failed ${(v('live_session_failed', 'rate') * 100).toFixed(2)} %, `
      + `connect p95 ${v('live_connect_ms', 'p(95)').toFixed(1)} ms, updates ${v('live_updates', 'count')} (${v('live_updates', 'rate').toFixed(1)}/s), `
      + `delay p50 ${v('live_update_delay_ms', 'med').toFixed(1)} / p95 ${v('live_update_delay_ms', 'p(95)').toFixed(1)} ms, `
      + `gap p50 ${v('live_update_gap_ms', 'med').toFixed(0)} / p95 ${v('live_update_gap_ms', 'p(95)').toFixed(0)} ms, `
      + `freshness p50 ${v('live_freshness_ms', 'med').toFixed(0)} / p95 ${v('live_freshness_ms', 'p(95)').toFixed(0)} ms`,
  ];
  for (const [metric, def] of Object.entries(m)) {
    for (const [expr, t] of Object.entries(def.thresholds || {})) lines.push(`[live] threshold ${metric} ${expr}: ${t.ok ? 'ok' : 'FAILED'}`);
  }
  const out = { stdout: `${lines.join('\n')}\n` };
  if (SUMMARY) out[SUMMARY] = JSON.stringify(data, null, 2);
  return out;
}
