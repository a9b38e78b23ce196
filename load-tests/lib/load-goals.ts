/**
 * What `npm run load` is judged by, as one goal table: the ingest limit per api process for each
 * batch size (the median of the ramp's runs, issue 16), the constant-rate scenarios' thresholds,
 * and the exactness of the counts after everything.
 */
import type { RampResult } from './ramp.js';

/** Issue 16: the highest sustained ingest rate one api process must reach. */
export const INGEST_GOAL_EVENTS_PER_S = 50_000;

/** The ramps of one batch size: each run's found limit, their median, and the run that found it. */
export interface BatchLimits {
  batch: number;
  limits: number[];
  median: number;
  /** The run whose limit is the median (the first such): its table stands for the batch size. */
  medianRun: RampResult;
}

/** The ramps grouped by batch size (in the order first run), each with the median of its limits (the lower middle for an even count). */
export function limitsByBatch(ramps: readonly RampResult[]): BatchLimits[] {
  const groups = new Map<number, RampResult[]>();
  for (const r of ramps) groups.set(r.plan.batch, [...(groups.get(r.plan.batch) ?? []), r]);
  return [...groups].map(([batch, runs]) => {
    const limits = runs.map((r) => r.limitEventsPerS);
    const median = [...limits].sort((a, b) => a - b)[Math.floor((limits.length - 1) / 2)];
    return { batch, limits, median, medianRun: runs.find((r) => r.limitEventsPerS === median) as RampResult };
  });
}

export interface LoadVerdicts {
  ramps: readonly RampResult[];
  /** Whether the constant-rate scenarios' k6 thresholds all passed; undefined when they did not run. */
  thresholdsPassed: boolean | undefined;
  exact: boolean;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const verdict = (met: boolean) => (met ? '**met**' : '**missed**');

/** The goal table: target, measured, met or missed, one row per goal. */
export function goalTable(v: LoadVerdicts): string {
  const rows = limitsByBatch(v.ramps).map((b) => {
    const top = b.medianRun.limitAtTop ? ' (every step met)' : '';
    const runs = b.limits.length > 1 ? ` (runs ${b.limits.map(fmt).join(' · ')})` : '';
    return `| highest sustained ingest rate per api process, batches of ${fmt(b.batch)} (p99 ≤ ${b.medianRun.plan.p99Ms} ms, none failed) `
      + `| ≥ ${fmt(INGEST_GOAL_EVENTS_PER_S)} events/s | ${fmt(b.median)} events/s${top}${runs} | ${verdict(b.median >= INGEST_GOAL_EVENTS_PER_S)} |`;
  });
  if (v.thresholdsPassed !== undefined) {
    rows.push(`| constant-rate ingest, readers and live viewers: k6 thresholds | all pass | ${v.thresholdsPassed ? 'all pass' : 'some failed'} | ${verdict(v.thresholdsPassed)} |`);
  }
  rows.push(`| counts after the load: ClickHouse FINAL = the unique events on the topic | exact | ${v.exact ? 'exact' : 'NOT exact'} | ${verdict(v.exact)} |`);
  return ['| goal | target | measured | |', '|---|---|---|---|', ...rows].join('\n');
}
