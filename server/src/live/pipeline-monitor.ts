/**
 * The pipeline's health for GET /api/v1/pipeline (PipelineStatus), computed from Kafka offsets,
 * the live state and ClickHouse, cached ~1 s.
 *
 * Committed offsets of the aggregator's and the sink's groups are read with one consumer per
 * group configured with that group.id that never subscribes: it asks the group coordinator for
 * offsets (OffsetFetch) but never joins, so it can neither trigger a rebalance nor commit.
 *
 * Lag = end offset − committed offset. On a transactional topic the last offset is often a
 * transaction marker (or aborted records) that no reader ever receives, which would leave a lag
 * of 1 forever; when the gap is small, a read_committed probe reads from the committed offset
 * and counts only the records a reader would actually get (probeGaps).
 */
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../clickhouse/index.js';
import type { PipelineStatus } from '../contracts/api-types.js';
import type { TallyConfig } from '../config/index.js';
import { Consumer, readToEnd } from '../kafka/index.js';
import { queryLastReconciliation } from '../ledger/index.js';
import type { Logger } from '../observability/index.js';
import type { FeedConsumer } from './feed-consumer.js';
import { clickhouseMinWatermark, closedTotals } from './live-clickhouse.js';
import type { LiveState } from './live-state.js';

const CACHE_MS = 1_000;
const SAMPLE_EVERY_MS = 2_000;
const THROUGHPUT_SPAN_MS = 10_000;
const REQUEST_TIMEOUT_MS = 5_000;
/** Gaps up to this many offsets are probed for records (vs. markers). */
const PROBE_MAX_GAP = 20;
const PROBE_TIMEOUT_MS = 1_000;
/** ClickHouse not answering within this long counts as unreachable for the status. */
const CLICKHOUSE_STATUS_TIMEOUT_MS = 5_000;

function withTimeout<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((resolve) => { timer = setTimeout(() => resolve(fallback), ms); })])
    .finally(() => clearTimeout(timer));
}

interface OffsetSample {
  at: number;
  /** Committed offset per input partition (only partitions with a committed offset). */
  offsets: Map<number, number>;
}

/** A partition's offsets from a group's committed offset to the end: its lag if every one is a record. */
export interface Gap {
  topic: string;
  partition: number;
  committed: number;
  end: number;
}

export const gapKey = (topic: string, partition: number): string => `${topic}|${partition}`;

/**
 * The records a read_committed reader gets in each gap, by gapKey, read with `probe` (connected,
 * partition EOF on). Only delivered records below the end count: the offsets of transaction
 * markers and aborted records are no lag (a settled pipeline's last offset is a commit marker).
 * A gap not known to be read through by the deadline — the read as a whole did not complete, and
 * no record of the gap reached its end — is left out: the caller keeps its offset difference.
 */
export async function probeGaps(probe: Consumer, gaps: Gap[], timeoutMs: number): Promise<Map<string, number>> {
  const records = new Map(gaps.map((g) => [gapKey(g.topic, g.partition), 0]));
  const ranges = gaps.map((g) => ({ topic: g.topic, partition: g.partition, from: g.committed, end: g.end }));
  const read = await readToEnd(probe, ranges, (m) => {
    const key = gapKey(m.topic, m.partition);
    records.set(key, (records.get(key) ?? 0) + 1);
  }, { what: 'the lag probe', deadline: Date.now() + timeoutMs, atDeadline: 'return', batch: 500, pollMs: 50 });
  // A gap not read to its end by the deadline (an open transaction) is not known: the caller keeps its offset difference.
  for (const r of read.unfinished) records.delete(gapKey(r.topic, r.partition));
  return records;
}

/**
 * Throughput (records/s) over about `spanMs`, pure: per partition, from the sample closest to
 * `spanMs` before the newest that has an offset for it (a partition first committed meanwhile is
 * measured from its first commit) to the newest; offsets going back count as 0.
 */
export function throughputFromSamples(samples: ReadonlyArray<{ at: number; offsets: ReadonlyMap<number, number> }>, spanMs = THROUGHPUT_SPAN_MS): number {
  if (samples.length < 2) return 0;
  const newest = samples[samples.length - 1];
  const target = newest.at - spanMs;
  let rate = 0;
  for (const [p, off] of newest.offsets) {
    let base: { at: number; offset: number } | undefined;
    for (let i = 0; i < samples.length - 1; i++) {
      const before = samples[i].offsets.get(p);
      if (before === undefined || samples[i].at >= newest.at) continue;
      if (base === undefined || Math.abs(samples[i].at - target) < Math.abs(base.at - target)) base = { at: samples[i].at, offset: before };
    }
    if (base !== undefined && off > base.offset) rate += ((off - base.offset) * 1000) / (newest.at - base.at);
  }
  return Math.round(rate);
}

export class PipelineMonitor {
  private readonly aggGroup: Consumer;
  private readonly sinkGroup: Consumer;
  private readonly probe: Consumer;
  private samples: OffsetSample[] = [];
  private cached: { at: number; status: PipelineStatus } | undefined;
  private inflight: Promise<PipelineStatus> | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private probeBusy: Promise<unknown> = Promise.resolve();
  /** The last gap read to its end, per topic and partition (see probeLag). */
  private readonly probedGaps = new Map<string, { committed: number; end: number; records: number }>();

  constructor(
    private readonly config: TallyConfig,
    private readonly state: LiveState,
    private readonly feed: FeedConsumer,
    private readonly ch: ClickHouseClient,
    private readonly log: Logger,
  ) {
    const brokers = config.kafka.brokers;
    // Committed offsets as stored; no waiting on pending transactional commits.
    this.aggGroup = new Consumer({ brokers, groupId: config.groups.aggregator, clientId: 'tally-live-status-aggregator', isolation: 'read_uncommitted' });
    this.sinkGroup = new Consumer({ brokers, groupId: config.groups.sink, clientId: 'tally-live-status-sink', isolation: 'read_uncommitted' });
    this.probe = new Consumer({
      brokers,
      groupId: `tally-live-probe-${crypto.randomBytes(6).toString('hex')}`,
      clientId: 'tally-live-status-probe',
      isolation: 'read_committed',
      partitionEof: true,
      extra: { 'fetch.wait.max.ms': 20 },
    });
    for (const c of this.consumers()) c.client.on('event.error', () => undefined);
  }

  async start(): Promise<void> {
    await Promise.all(this.consumers().map((c) => c.connect()));
    this.sampler = setInterval(() => {
      this.committed(this.aggGroup, this.config.topics.impressions).then((offsets) => this.addSample(offsets), () => undefined);
    }, SAMPLE_EVERY_MS);
    this.sampler.unref();
  }

  async stop(): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    await this.inflight?.catch(() => undefined);
    await this.probeBusy.catch(() => undefined);
    await Promise.all(this.consumers().map((c) => c.disconnect()));
  }

  private consumers(): Consumer[] {
    return [this.aggGroup, this.sinkGroup, this.probe];
  }

  /** The current status, at most ~1 s old; concurrent callers share one computation. */
  async status(): Promise<PipelineStatus> {
    const now = Date.now();
    if (this.cached && now - this.cached.at < CACHE_MS) return this.cached.status;
    this.inflight ??= this.compute().then((status) => {
      this.cached = { at: Date.now(), status };
      return status;
    }).finally(() => { this.inflight = undefined; });
    return this.inflight;
  }

  private async compute(): Promise<PipelineStatus> {
    const { impressions, counts } = this.config.topics;
    const n = this.config.partitions;
    const [aggCommitted, sinkCommitted, inputEnds, countsEnds, ch] = await Promise.all([
      this.committed(this.aggGroup, impressions),
      this.committed(this.sinkGroup, counts),
      this.endOffsets(impressions, n),
      this.endOffsets(counts, n),
      withTimeout(this.clickhouseView(), CLICKHOUSE_STATUS_TIMEOUT_MS, { reachable: false, exact: null, reconciliation: null }),
    ]);
    this.addSample(aggCommitted);

    const gaps: Gap[] = [];
    const lagOf = (topic: string, committed: Map<number, number>, ends: Map<number, { low: number; high: number }>, p: number): number | Gap => {
      const e = ends.get(p);
      if (e === undefined) return 0;
      const from = committed.get(p) ?? e.low;
      const raw = Math.max(0, e.high - from);
      if (raw > 0 && raw <= PROBE_MAX_GAP) return { topic, partition: p, committed: from, end: e.high };
      return raw;
    };
    const raw: Array<{ partition: number; agg: number | Gap; sink: number | Gap }> = [];
    for (let p = 0; p < n; p++) {
      const agg = lagOf(impressions, aggCommitted, inputEnds, p);
      const sink = lagOf(counts, sinkCommitted, countsEnds, p);
      if (typeof agg !== 'number') gaps.push(agg);
      if (typeof sink !== 'number') gaps.push(sink);
      raw.push({ partition: p, agg, sink });
    }
    const probed = await this.probeLag(gaps);
    const resolve = (v: number | Gap): number => (typeof v === 'number' ? v : probed.get(gapKey(v.topic, v.partition)) ?? v.end - v.committed);

    const watermarks = this.state.partitionWatermarks();
    const lastEmittedAt = this.state.lastEmittedAt;
    const serverTime = Date.now();
    return {
      partitions: raw.map((r) => ({
        partition: r.partition,
        aggregatorLag: resolve(r.agg),
        sinkLag: resolve(r.sink),
        watermark: watermarks[r.partition]?.watermark ?? 0,
      })),
      lastTransactionAgeMs: lastEmittedAt === null ? null : Math.max(0, serverTime - lastEmittedAt),
      throughputPerSec: throughputFromSamples(this.samples),
      duplicatesRemoved: this.state.duplicatesRemoved,
      deadLetters: this.feed.deadLetters(),
      clickhouseReachable: ch.reachable,
      exact: ch.exact,
      reconciliation: ch.reconciliation,
      serverTime,
    };
  }

  private addSample(offsets: Map<number, number>): void {
    const now = Date.now();
    this.samples.push({ at: now, offsets });
    const keepFrom = now - THROUGHPUT_SPAN_MS - 3 * SAMPLE_EVERY_MS;
    while (this.samples.length > 2 && this.samples[0].at < keepFrom) this.samples.shift();
  }

  /** Committed offsets of the consumer's group for every partition of `topic` (absent: none committed). */
  private async committed(c: Consumer, topic: string): Promise<Map<number, number>> {
    const toppars = Array.from({ length: this.config.partitions }, (_, partition) => ({ topic, partition }));
    const out = new Map<number, number>();
    try {
      const tps = await c.committed(toppars, REQUEST_TIMEOUT_MS);
      for (const tp of tps) if (tp.offset >= 0) out.set(tp.partition, tp.offset);
    } catch (err) {
      this.log.debug({ topic, err: String(err) }, 'live.committed_offsets_failed');
    }
    return out;
  }

  private async endOffsets(topic: string, partitions: number): Promise<Map<number, { low: number; high: number }>> {
    const out = new Map<number, { low: number; high: number }>();
    await Promise.all(Array.from({ length: partitions }, async (_, p) => {
      try {
        const w = await this.aggGroup.queryWatermarkOffsets(topic, p, REQUEST_TIMEOUT_MS);
        out.set(p, { low: Math.max(0, w.lowOffset), high: Math.max(0, w.highOffset) });
      } catch (err) {
        this.log.debug({ topic, partition: p, err: String(err) }, 'live.end_offset_failed');
      }
    }));
    return out;
  }

  /**
   * probeGaps, one probe at a time (the probe consumer is shared); a failed probe leaves every
   * gap's offset difference. A gap read to its end is remembered: the same committed offset and
   * end always hold the same records, so a settled pipeline (lag 1: a commit marker) is probed once,
   * not at every status, and a slow probe under load cannot bring an answered gap back.
   */
  private probeLag(gaps: Gap[]): Promise<Map<string, number>> {
    const known = new Map<string, number>();
    const unknown: Gap[] = [];
    for (const g of gaps) {
      const key = gapKey(g.topic, g.partition);
      const m = this.probedGaps.get(key);
      if (m !== undefined && m.committed === g.committed && m.end === g.end) known.set(key, m.records);
      else unknown.push(g);
    }
    const run = () => (unknown.length === 0 ? Promise.resolve(new Map<string, number>()) : probeGaps(this.probe, unknown, PROBE_TIMEOUT_MS));
    const p = this.probeBusy.then(run, run);
    this.probeBusy = p.catch(() => undefined);
    return p.then((probed) => {
      for (const g of unknown) {
        const records = probed.get(gapKey(g.topic, g.partition));
        if (records !== undefined) this.probedGaps.set(gapKey(g.topic, g.partition), { committed: g.committed, end: g.end, records });
      }
      for (const [key, records] of known) probed.set(key, records);
      return probed;
    }, (err: unknown) => {
      this.log.debug({ err: String(err) }, 'live.probe_failed');
      return known;
    });
  }

  /** Reachability and the exact check of closed windows (null when unknown). */
  private async clickhouseView(): Promise<{ reachable: boolean; exact: PipelineStatus['exact']; reconciliation: PipelineStatus['reconciliation'] }> {
    const ping = await this.ch.ping().catch((err: unknown) => ({ success: false as const, error: err as Error }));
    if (!ping.success) return { reachable: false, exact: null, reconciliation: null };
    const db = this.config.clickhouse.database;
    const [exact, reconciliation] = await Promise.all([
      this.exactCheck(db),
      queryLastReconciliation(this.ch, db).catch((err: unknown) => {
        this.log.debug({ err: String(err) }, 'live.reconciliation_read_failed');
        return null;
      }),
    ]);
    return { reachable: true, exact, reconciliation };
  }

  private async exactCheck(db: string): Promise<PipelineStatus['exact']> {
    try {
      // Windows closed by both: every row of them is in ClickHouse (the sink inserts rows before
      // the watermark that closes them) and in the live state (same transaction as that watermark).
      const chWatermark = await clickhouseMinWatermark(this.ch, db, this.config.partitions);
      const liveWatermark = this.state.minWatermark();
      if (chWatermark === null || liveWatermark === null) return null;
      const totals = this.state.finalTotals(Math.min(chWatermark, liveWatermark));
      if (totals.windows === 0 || totals.lastWindowStart === null) return { windows: 0, kafkaImpressions: 0, clickhouseImpressions: 0, equal: true };
      const fromMs = this.state.rangeStart;
      const chTotals = await closedTotals(this.ch, db, fromMs, totals.lastWindowStart);
      return {
        windows: totals.windows,
        kafkaImpressions: Number(totals.impressions),
        clickhouseImpressions: Number(chTotals.impressions),
        equal: totals.impressions === chTotals.impressions && totals.windows === chTotals.windows,
      };
    } catch (err) {
      this.log.debug({ err: String(err) }, 'live.exact_check_failed');
      return null;
    }
  }
}
