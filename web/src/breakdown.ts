/**
 * A breakdown table (no Vue, no I/O): /breakdown's rows of one dimension as the table's lines (one
 * per value, sums exact: spend in bigint micros), each value's share of the impressions, sorting by
 * any column, and the check that the lines add up to the totals to the impression and the micro.
 */
import type { BreakdownRow, Maturity } from './contracts.js';
import { leastMature } from './maturity.js';

export interface BreakdownLine {
  /** The dimension's value, `unknown` or `other`. */
  value: string;
  impressions: number;
  spendMicros: bigint;
  /** The least settled of its rows'. */
  maturity: Maturity;
}

export type BreakdownColumn = 'value' | 'impressions' | 'spend' | 'share' | 'maturity';

export interface BreakdownSort {
  column: BreakdownColumn;
  descending: boolean;
}

/** The API's own order: most impressions first. */
export const DEFAULT_SORT: BreakdownSort = { column: 'impressions', descending: true };

const DIMENSION_LABELS: Record<string, string> = {
  creative_id: 'Creative', publisher_id: 'Publisher', country: 'Country', device: 'Device',
};

/** "Creative" for creative_id; a dimension this build does not know (a newer server) by its name. */
export function dimensionLabel(dimension: string): string {
  return DIMENSION_LABELS[dimension] ?? dimension;
}

/** One line per value, most impressions first: a `total` answer's rows as they are, any other granularity's summed per value. */
export function breakdownLines(rows: readonly BreakdownRow[]): BreakdownLine[] {
  const byValue = new Map<string, BreakdownLine>();
  for (const r of rows) {
    const line = byValue.get(r.value);
    if (line === undefined) {
      byValue.set(r.value, { value: r.value, impressions: r.impressions, spendMicros: BigInt(r.spendMicros), maturity: r.maturity });
      continue;
    }
    line.impressions += r.impressions;
    line.spendMicros += BigInt(r.spendMicros);
    line.maturity = leastMature(line.maturity, r.maturity);
  }
  return sortLines([...byValue.values()], DEFAULT_SORT);
}

export function sumLines(lines: readonly BreakdownLine[]): { impressions: number; spendMicros: bigint } {
  return lines.reduce((t, l) => ({ impressions: t.impressions + l.impressions, spendMicros: t.spendMicros + l.spendMicros }), { impressions: 0, spendMicros: 0n });
}

/** Whether the lines add up to the answer's totals, to the impression and the micro. */
export function linesMatchTotals(lines: readonly BreakdownLine[], totals: { impressions: number; spendMicros: number | string }): boolean {
  const sum = sumLines(lines);
  return sum.impressions === totals.impressions && sum.spendMicros === BigInt(totals.spendMicros);
}

/** A share in hundredths of a percent, rounded half up, by integer arithmetic: 1 of 3 → 3333; null without impressions. */
export function shareBasisPoints(impressions: number, total: number): number | null {
  if (total <= 0) return null;
  const n = BigInt(total);
  return Number((BigInt(impressions) * 20_000n + n) / (2n * n));
}

/** A share as a percentage with 2 decimals: "33.33"; "" without impressions. */
export function formatShare(impressions: number, total: number): string {
  const bp = shareBasisPoints(impressions, total);
  return bp === null ? '' : `${Math.floor(bp / 100)}.${String(bp % 100).padStart(2, '0')}`;
}

const MATURITY_RANK: Record<Maturity, number> = { live: 0, provisional: 1, final: 2 };

function compare(a: BreakdownLine, b: BreakdownLine, column: BreakdownColumn): number {
  switch (column) {
    case 'value':
      return a.value.localeCompare(b.value, 'en');
    case 'impressions':
    case 'share': // a share is impressions over one total: the same order
      return a.impressions - b.impressions;
    case 'spend':
      return a.spendMicros < b.spendMicros ? -1 : a.spendMicros > b.spendMicros ? 1 : 0;
    case 'maturity':
      return (MATURITY_RANK[a.maturity] ?? -1) - (MATURITY_RANK[b.maturity] ?? -1);
  }
}

/** The lines in a column's order; ties by value (A→Z), so the order is the same on every render and in the CSV. */
export function sortLines(lines: readonly BreakdownLine[], sort: BreakdownSort): BreakdownLine[] {
  const sign = sort.descending ? -1 : 1;
  return [...lines].sort((a, b) => sign * compare(a, b, sort.column) || a.value.localeCompare(b.value, 'en'));
}

/** A click on a column's header: the same column flips; another starts A→Z for values, largest first for numbers. */
export function nextSort(current: BreakdownSort, column: BreakdownColumn): BreakdownSort {
  if (current.column === column) return { column, descending: !current.descending };
  return { column, descending: column !== 'value' };
}
