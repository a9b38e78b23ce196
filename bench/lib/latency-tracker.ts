/**
 * The exact per-event bookkeeping of bench/latency.ts (its header says why it is exact): the row
 * layout (each campaign on one source partition), per row key its events in produce order and how
 * many of them each observer has seen, per event when it was sent and when each observer first
 * held it; and percentiles over those times.
 */

export interface Percentiles { p50: number; p99: number; max: number }

export const OBSERVERS = ['committed', 'clickhouse', 'socket.io'] as const;
export const COMMITTED = 0;
export const CLICKHOUSE = 1;
export const SOCKETIO = 2;

/**
 * Advertisers and campaigns of the bench's events: campaign j of partition p (`lat-cmp-<j>-p<p>`)
 * belongs to advertiser j and only ever gets events whose home partition is p.
 */
export class RowLayout {
  private readonly campaigns: string[][];
  private readonly partitionOfCampaign = new Map<string, number>();

  constructor(readonly partitions: number, readonly campaignsPerPartition: number) {
    this.campaigns = Array.from({ length: partitions }, (_, p) => Array.from({ length: campaignsPerPartition }, (_, j) => `lat-cmp-${j}-p${p}`));
    this.campaigns.forEach((cs, p) => cs.forEach((c) => this.partitionOfCampaign.set(c, p)));
  }

  advertiser(j: number): string {
    return `lat-adv-${j}`;
  }

  campaign(p: number, j: number): string {
    return this.campaigns[p][j];
  }

  /** The one source partition of a campaign of this layout; undefined for any other campaign. */
  partitionOf(campaign: string): number | undefined {
    return this.partitionOfCampaign.get(campaign);
  }
}

/** One row key: its events' indices in produce order and, per observer, how many of them were seen. */
export class RowSeq {
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

export class Tracker {
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

  constructor(capacity: number, readonly layout: RowLayout) {
    this.sentAt = new Float64Array(capacity);
    this.visibleAt = OBSERVERS.map(() => new Float64Array(capacity).fill(NaN));
    this.writtenAt = new Float64Array(capacity).fill(NaN);
  }

  /** The row of (window, partition, j), created on first use (once per window per key, not per event). */
  row(windowStart: number, p: number, j: number): RowSeq {
    const { partitions, campaignsPerPartition } = this.layout;
    let w = this.byWindow.get(windowStart);
    if (!w) {
      w = [];
      for (let pp = 0; pp < partitions; pp++) {
        for (let jj = 0; jj < campaignsPerPartition; jj++) {
          const r = new RowSeq();
          w.push(r);
          this.rows.set(`${windowStart}|${this.layout.advertiser(jj)}|${this.layout.campaign(pp, jj)}|${pp}`, r);
        }
      }
      this.byWindow.set(windowStart, w);
    }
    return w[p * campaignsPerPartition + j];
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

  /** Double counts and foreign rows, per observer, for the result's note. */
  problems(): string[] {
    const out: string[] = [];
    OBSERVERS.forEach((o, k) => {
      if (this.overCounts[k] > 0) out.push(`${o}: ${this.overCounts[k]} counts above what was produced (double count?)`);
      if (this.unknownRows[k] > 0) out.push(`${o}: ${this.unknownRows[k]} rows this run did not produce`);
    });
    return out;
  }
}

/** Percentiles of `to(i) − from(i)` over events [first, end); a NaN end counts as +Infinity (missing). */
export function percentilesOf(first: number, end: number, from: Float64Array, to: Float64Array): { p: Percentiles; missing: number } {
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
