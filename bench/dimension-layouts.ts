/**
 * What breakdowns cost in the aggregator's core, and the layout decision behind them (issue 15):
 * the bench's own events (80 % of them carry each dimension) fed in-process, without Kafka, through
 * three ways of counting, each with a drain (what a commit writes) every 2,000 events:
 *
 * - none: campaign rows only (TALLY_DIMENSIONS empty);
 * - rows of their own (what tally does): per row, each dimension's values (RowBreakdown), so a
 *   breakdown has as many rows as values, summed per dimension;
 * - columns of one table: per row, one cell per combination of all four values (a cube: any
 *   cross-filter answerable), counted in the same exact way.
 *
 * Rows are what ClickHouse would hold at the end (FINAL); events/s is the core alone.
 */
import { hashImpressionId, PartitionState, type WindowSettings } from '../server/src/aggregator/core/index.js';
import { windowSettingsOf } from '../server/src/aggregator/index.js';
import type { TallyConfig } from '../server/src/config/index.js';
import { DIMENSIONS } from '../server/src/contracts/dimensions.js';
import { dimensionFields, homePartition, parseImpression, type Impression } from '../server/src/impression/index.js';
import { buildEventPlan, planContext } from '../server/src/tools/index.js';
import { median } from './lib/contender-result.js';

export type Layout = 'none' | 'dimension rows' | 'cube columns';
export const LAYOUTS: Layout[] = ['none', 'dimension rows', 'cube columns'];

export interface LayoutResult {
  layout: Layout;
  eventsPerSec: number;
  /** Campaign window rows, and breakdown rows (dimension rows: one per value; cube: one per combination). */
  windowRows: number;
  breakdownRows: number;
}

const DRAIN_EVERY = 2_000;

/** The "columns of one table" layout: exact impressions and spend per combination of all dimension values, per row. */
class CubeCounter {
  private readonly cells = new Map<string, { impressions: number; spend: number; dirty: boolean }>();
  private dirty: Array<{ impressions: number; spend: number; dirty: boolean }> = [];

  add(imp: Impression, windowStart: number): void {
    const key = `${windowStart}|${imp.advertiserId}|${imp.campaignId}|${imp.dimensionValues.join('|')}`;
    let cell = this.cells.get(key);
    if (cell === undefined) {
      cell = { impressions: 0, spend: 0, dirty: false };
      this.cells.set(key, cell);
    }
    cell.impressions++;
    cell.spend += imp.costMicros;
    if (!cell.dirty) {
      cell.dirty = true;
      this.dirty.push(cell);
    }
  }

  /** The changed cells, as a commit would write them. */
  drain(): number {
    const n = this.dirty.length;
    for (const c of this.dirty) c.dirty = false;
    this.dirty = [];
    return n;
  }

  get size(): number {
    return this.cells.size;
  }
}

function settingsOf(config: TallyConfig, layout: Layout): WindowSettings {
  return { ...windowSettingsOf(config), dimensions: layout === 'dimension rows' ? DIMENSIONS : [] };
}

function runLayout(config: TallyConfig, layout: Layout, byPartition: Impression[][], now: number): LayoutResult {
  const windowMs = config.windowMs;
  let windowRows = 0;
  let breakdownRows = 0;
  let events = 0;
  const t0 = process.hrtime.bigint();
  byPartition.forEach((imps, p) => {
    const state = new PartitionState(p, settingsOf(config, layout), now);
    const cube = layout === 'cube columns' ? new CubeCounter() : null;
    const rows = new Map<string, number>();
    const collect = () => {
      for (const r of state.drainChanges(now, { idle: false, position: 0 }, new Map()).rows) {
        rows.set(`${r.windowStart}|${r.advertiserId}|${r.campaignId}`, r.breakdowns?.reduce((s, b) => s + b.values.length, 0) ?? 0);
      }
      cube?.drain();
    };
    for (const imp of imps) {
      state.observeSourceEvent(imp.ts, now);
      const outcome = state.process(imp, hashImpressionId(imp.impressionId), now);
      if (cube !== null && outcome.kind === 'counted') cube.add(imp, imp.ts - (imp.ts % windowMs));
      if (++events % DRAIN_EVERY === 0) collect();
    }
    collect();
    windowRows += rows.size;
    breakdownRows += cube !== null ? cube.size : [...rows.values()].reduce((s, n) => s + n, 0);
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { layout, eventsPerSec: events / seconds, windowRows, breakdownRows };
}

/** A warm-up round, then `runs` rounds of every layout, interleaved; the median of each. */
export function measureDimensionLayouts(config: TallyConfig, events: number, runs: number, log: (m: string) => void): LayoutResult[] {
  const now = Date.now();
  const plan = buildEventPlan({
    seed: 20261127, count: events, idPrefix: 'layout-', duplicates: 0.05, bad: 0, tooLate: 0, lateWithinHorizon: 0, keyMode: 'home', spanMs: 10 * 60_000,
  }, planContext(config, now));
  const fields = dimensionFields(DIMENSIONS);
  const byPartition: Impression[][] = Array.from({ length: config.partitions }, () => []);
  for (const r of plan.records) {
    const parsed = parseImpression(Buffer.from(r.value), fields);
    if (parsed.ok) byPartition[homePartition(parsed.impression.impressionId, config.partitions)].push(parsed.impression);
  }
  const results = new Map<Layout, LayoutResult[]>();
  // One unmeasured round first: the JIT warms up on every layout, not only on the first one timed.
  for (const layout of LAYOUTS) runLayout(config, layout, byPartition, now);
  for (let round = 0; round < runs; round++) {
    for (const layout of LAYOUTS) {
      const r = runLayout(config, layout, byPartition, now);
      log(`  layouts ${round + 1}/${runs}: ${layout}: ${Math.round(r.eventsPerSec).toLocaleString('en')} events/s, ${r.windowRows} window rows, ${r.breakdownRows} breakdown rows`);
      results.set(layout, [...(results.get(layout) ?? []), r]);
    }
  }
  return LAYOUTS.map((layout) => {
    const rs = results.get(layout) ?? [];
    return { layout, eventsPerSec: median(rs.map((r) => r.eventsPerSec)), windowRows: rs[0]?.windowRows ?? NaN, breakdownRows: rs[0]?.breakdownRows ?? NaN };
  });
}
