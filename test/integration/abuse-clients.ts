/**
 * The well-behaved client of the flood tests, whose latencies they bound while an attack runs
 * (the attacks themselves run in another process: abuse-attacks.ts).
 */
import crypto from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, LiveWindowRow, ServerToClientEvents } from '../../server/src/contracts/live-protocol.js';
import { sleep } from '../kit/harness.js';

export function p99(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)];
}

export interface ProbeReport {
  healthz: number[];
  rest: number[];
  ingest: number[];
  /** From an ingest's 202 to its events showing in the live feed. */
  live: number[];
  failures: string[];
}

/**
 * The well-behaved client: /healthz and a REST read every 100 ms, a small ingest every 600 ms
 * (within the default per-token limit), and a live socket on which each ingest must show up.
 */
export class Probe {
  readonly report: ProbeReport = { healthz: [], rest: [], ingest: [], live: [], failures: [] };
  private running = true;
  private readonly loops: Array<Promise<void>>;
  private readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  private readonly rows = new Map<string, number>();
  private sent = 0;
  private seq = 0;
  /** Ids unique to this probe: another probe's would be duplicates, removed and never counted. */
  private readonly run = crypto.randomBytes(4).toString('hex');
  private readonly waiting: Array<{ expect: number; at: number }> = [];
  private readonly received = { snapshots: 0, updates: 0 };

  constructor(
    private readonly base: string,
    private readonly tokens: { reader: string; ingest: string },
    private readonly advertiser: string,
    private readonly campaign: string,
  ) {
    this.socket = io(base, { path: '/socket.io', auth: { token: tokens.reader, advertiserId: advertiser }, reconnection: false, transports: ['websocket'] });
    const apply = (rows: LiveWindowRow[]) => {
      for (const r of rows) if (r.campaignId === campaign) this.rows.set(String(r.windowStart), r.impressions);
      const seen = [...this.rows.values()].reduce((a, b) => a + b, 0);
      while (this.waiting.length > 0 && this.waiting[0].expect <= seen) this.report.live.push(Date.now() - (this.waiting.shift() as { at: number }).at);
    };
    this.socket.on('snapshot', (s) => { this.received.snapshots++; apply(s.rows); });
    this.socket.on('update', (u) => { this.received.updates++; apply(u.rows); });
    this.socket.on('connect_error', (err) => this.report.failures.push(`live socket refused: ${err.message}`));
    this.socket.on('disconnect', (reason) => { if (this.running) this.report.failures.push(`live socket disconnected: ${reason}`); });
    this.loops = [this.reads(), this.ingests()];
  }

  /** Forgets the latencies so far (the warm-up: the first ingest connects the API's producer). */
  resetTimings(): void {
    for (const k of ['healthz', 'rest', 'ingest', 'live'] as const) this.report[k].length = 0;
  }

  /** What the probe saw so far, for a failure message. */
  describe(): string {
    return `socket ${this.socket.connected ? 'connected' : 'not connected'}, ${this.received.snapshots} snapshots, ${this.received.updates} updates, `
      + `${this.sent} events sent, ${this.liveImpressions} live; failures: ${this.report.failures.slice(0, 5).join('; ')}`;
  }

  /** Impressions of the probe's campaign the live feed shows now. */
  get liveImpressions(): number {
    return [...this.rows.values()].reduce((a, b) => a + b, 0);
  }

  private async timed(into: number[], what: string, call: () => Promise<Response>, expect: number): Promise<void> {
    const t0 = performance.now();
    try {
      const res = await call();
      await res.arrayBuffer();
      if (res.status !== expect) this.report.failures.push(`${what}: ${res.status}`);
    } catch (err) {
      this.report.failures.push(`${what}: ${String(err)}`);
    }
    into.push(performance.now() - t0);
  }

  private async reads(): Promise<void> {
    const auth = { authorization: `Bearer ${this.tokens.reader}` };
    while (this.running) {
      await this.timed(this.report.healthz, 'healthz', () => fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(10_000) }), 200);
      await this.timed(this.report.rest, 'campaigns', () => fetch(`${this.base}/api/v1/campaigns?advertiser_id=${this.advertiser}`, { headers: auth, signal: AbortSignal.timeout(10_000) }), 200);
      await sleep(100);
    }
  }

  private async ingests(): Promise<void> {
    while (this.running) {
      const events = Array.from({ length: 5 }, () => JSON.stringify({
        impression_id: `probe-${this.campaign}-${this.run}-${++this.seq}`, ts: Date.now(), advertiser_id: this.advertiser, campaign_id: this.campaign, cost_micros: 100,
      }));
      const before = this.report.failures.length;
      await this.timed(this.report.ingest, 'ingest', () => fetch(`${this.base}/api/v1/impressions`, {
        method: 'POST', body: events.join('\n'), signal: AbortSignal.timeout(10_000),
        headers: { authorization: `Bearer ${this.tokens.ingest}`, 'content-type': 'application/x-ndjson' },
      }), 202);
      if (this.report.failures.length === before) {
        this.sent += events.length;
        this.waiting.push({ expect: this.sent, at: Date.now() });
      }
      await sleep(600);
    }
  }

  /** Stops the loops and waits (up to 10 s) for the last ingests to show in the live feed. */
  async stop(): Promise<ProbeReport> {
    this.running = false;
    await Promise.all(this.loops);
    const deadline = Date.now() + 10_000;
    while (this.waiting.length > 0 && Date.now() < deadline) await sleep(50);
    for (const w of this.waiting) this.report.failures.push(`ingest of ${w.expect} never showed live`);
    this.socket.close();
    return this.report;
  }
}
