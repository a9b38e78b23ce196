/** Shared fixtures of the PartitionState unit tests (split by what they test). */
import assert from 'node:assert/strict';
import type { Impression } from '../../server/src/impression/index.js';
import {
  hashImpressionId, PartitionState, PERIOD_MS,
  type Changes, type PartitionProgress, type PeriodClose, type ProcessOutcome, type WindowSettings,
} from '../../server/src/aggregator/core/index.js';
import { rowKey, type WindowRow } from '../../server/src/contracts/count-record.js';

export const MIN = 60_000;
export const SETTINGS: WindowSettings = {
  windowMs: MIN,
  outOfOrdernessMs: 5_000,
  allowedLatenessMs: 10_000,
  dedupHorizonMs: 3_600_000,
  maxClockSkewMs: 300_000,
  partitions: 1,
  idleTimeoutMs: 10_000,
  dimensions: [],
  dimensionValueLimit: 100,
};
/** A window start (multiple of 60 s). */
export const T0 = 1_764_150_000_000;
export const P = 0;
/** A wall clock far enough ahead that min(max event time, now) is the max event time. */
export const LATER = T0 + 86_400_000;

export function imp(impressionId: string, ts: number, advertiserId = 'adv-1', campaignId = 'cmp-1', costMicros = 100): Impression {
  return { impressionId, ts, advertiserId, campaignId, costMicros, dimensionValues: [] };
}

export function newState(settings: Partial<WindowSettings> = {}, partition = P, now = T0): PartitionState {
  return new PartitionState(partition, { ...SETTINGS, ...settings }, now);
}

/** A record of the state's own source whose home partition it is, as the task feeds it. */
export function feed(state: PartitionState, i: Impression, nowMs = i.ts): ProcessOutcome {
  state.observeSourceEvent(i.ts, nowMs);
  return state.process(i, hashImpressionId(i.impressionId), nowMs);
}

/** A forwarded copy from another partition: counted here, but it does not move this source's time. */
export function forwarded(state: PartitionState, i: Impression, nowMs = i.ts): ProcessOutcome {
  return state.process(i, hashImpressionId(i.impressionId), nowMs);
}

/** Every source partition's end: 0, where the idle sources of these tests have read to. */
export const ENDS: ReadonlyMap<number, number> = new Map(Array.from({ length: 8 }, (_, p) => [p, 0]));

export function drain(state: PartitionState, nowMs = LATER, sourceIdle = false): Changes {
  return state.drainChanges(nowMs, { idle: sourceIdle, position: 0 }, ENDS);
}

export function rowOf(changes: Changes, windowStart: number, advertiserId = 'adv-1', campaignId = 'cmp-1'): WindowRow {
  const row = changes.rows.find((r) => r.windowStart === windowStart && r.advertiserId === advertiserId && r.campaignId === campaignId);
  assert.ok(row, `no row for ${windowStart}/${advertiserId}/${campaignId} in ${JSON.stringify(changes.rows, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
  return row;
}

/** Moves the watermark to exactly `wm` (an event in a side campaign, then a drain). */
export function advanceTo(state: PartitionState, wm: number, tag: string): Changes {
  feed(state, imp(`wm-${tag}`, wm + SETTINGS.outOfOrdernessMs, 'adv-wm', 'cmp-wm'));
  const ch = drain(state);
  assert.equal(state.watermark, wm);
  return ch;
}


export function windowOf(ts: number): number {
  return ts - (ts % MIN);
}

export function periodStart(ts: number): number {
  return ts - (ts % PERIOD_MS);
}

/** A progress record of one partition (of one) at watermark `wm`, as a drain at that watermark writes it. */
export function progressOf(wm: number): PartitionProgress {
  return {
    watermark: wm, maxEventTime: wm + 5_000, sourceWatermark: wm, inputs: [{ watermark: wm, idle: false, position: 0 }],
    closedThrough: wm - SETTINGS.allowedLatenessMs, evictedBefore: 0, periodsClosedBefore: 0, openPeriods: [], windowMs: MIN, partitions: 1,
  };
}

export interface Event {
  imp: Impression;
  now: number;
}

/** Mostly advancing event times (5 ms steps), with late events (some beyond the horizon) and replays. */
export function scenario(n: number, seed: number): Event[] {
  let s = seed;
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  const events: Event[] = [];
  let clock = T0;
  for (let i = 0; i < n; i++) {
    clock += 5;
    const r = rand();
    if (r < 0.15 && events.length > 0) {
      // a producer retry: the same event again, possibly much later, sometimes re-stamped
      const back = events[Math.floor(rand() * events.length)].imp;
      events.push({ imp: r < 0.03 ? { ...back, ts: clock } : back, now: clock });
    } else {
      const lag = r < 0.25 ? Math.floor(rand() * 9000) : Math.floor(rand() * 300);
      const ts = Math.max(1, clock - lag);
      const adv = `adv-${Math.floor(rand() * 3)}`;
      const cmp = `cmp-${Math.floor(rand() * 2)}`;
      events.push({ imp: imp(`imp-${i}`, ts, adv, cmp, Math.floor(rand() * 5000)), now: clock });
    }
  }
  return events;
}

export function run(state: PartitionState, events: Event[]): { outcomes: string[]; drains: Changes[] } {
  const outcomes: string[] = [];
  const drains: Changes[] = [];
  events.forEach((e, i) => {
    outcomes.push(feed(state, e.imp, e.now).kind);
    if (i % 50 === 49) drains.push(copyChanges(drain(state, e.now)));
  });
  drains.push(copyChanges(drain(state, events[events.length - 1].now)));
  return { outcomes, drains };
}

/** Deep copy with id chunks as plain arrays, so deepEqual compares contents. */
export function copyChanges(ch: Changes): Changes {
  return {
    ...ch,
    rows: ch.rows.map((r) => ({ ...r })),
    dedupDeltas: ch.dedupDeltas.map((d) => ({ ...d, ids: Uint8Array.from(d.ids) })),
    evicted: ch.evicted.map((e) => ({ ...e })),
    closes: ch.closes.map((c) => ({ ...c, rows: c.rows.map((r) => ({ ...r })), rowKeys: [...c.rowKeys], late: c.late.map((l) => ({ ...l })) })),
  };
}

/** What the compacted impression-counts and changelog partitions hold after a series of drains. */
export class KafkaModel {
  private rows = new Map<string, WindowRow>();
  private chunks = new Map<string, Uint8Array>();
  private progress: PartitionProgress | null = null;

  readonly closes: PeriodClose[] = [];

  write(ch: Changes): void {
    for (const r of ch.rows) this.rows.set(rowKey(r.windowStart, r.advertiserId, r.campaignId, r.sourcePartition), { ...r });
    for (const d of ch.dedupDeltas) this.chunks.set(`${d.windowStart}:${d.chunk}`, Uint8Array.from(d.ids));
    for (const e of ch.evicted) for (let c = 0; c < e.chunks; c++) this.chunks.delete(`${e.windowStart}:${c}`);
    for (const c of ch.closes) {
      for (const k of c.rowKeys) this.rows.delete(k);
      this.closes.push(c);
    }
    if (ch.progress !== null) this.progress = ch.progress;
  }

  restoreInto(state: PartitionState, now = LATER): void {
    if (this.progress !== null) state.restoreProgress(this.progress, now);
    for (const r of this.rows.values()) state.restoreRow(r);
    for (const [key, ids] of this.chunks) {
      const [ws, c] = key.split(':').map(Number);
      state.restoreDedupChunk(ws, c, ids);
    }
  }

  snapshot(): { rows: [string, WindowRow][]; chunks: [string, number[]][] } {
    return {
      rows: [...this.rows.entries()].sort((a, b) => a[0].localeCompare(b[0])),
      chunks: [...this.chunks.entries()].map(([k, v]): [string, number[]] => [k, [...v]]).sort((a, b) => a[0].localeCompare(b[0])),
    };
  }
}
