/**
 * Compares ClickHouse's breakdowns (impression_breakdowns FINAL, summed over source partitions)
 * with a truth's, per (window, advertiser, campaign, dimension, value); pure, exact (BigInt).
 *
 * Where ClickHouse has an `other` value for a (window, advertiser, campaign, dimension), some
 * partition hit TALLY_DIMENSION_LIMIT and which values kept their name depends on read order, so
 * value by value is impossible there. The `other` rule instead: every named value counts at most
 * what the truth has for it (impressions and spend), and the dimension sums to the truth's row.
 */
import { DIMENSIONS, OTHER_VALUE, type Dimension } from '../contracts/dimensions.js';
import { truthRowKey, type TruthRow } from './ground-truth.js';
import type { ActualBreakdownRow } from './verify-sql.js';

export type BreakdownDifferenceKind = 'missing' | 'extra' | 'different' | 'above_truth' | 'sum_different';

export interface BreakdownDifference {
  windowStart: number;
  advertiserId: string;
  campaignId: string;
  dimension: string;
  /** The value; null for the dimension's sum (sum_different). */
  value: string | null;
  /**
   * Value by value: missing (in the truth, not in ClickHouse), extra (the other way round),
   * different (both, other numbers). By the `other` rule: above_truth (a named value counts more
   * than the truth has for it), sum_different (the dimension does not sum to the truth's row).
   */
  kind: BreakdownDifferenceKind;
  /** Decimal strings; null on the side that has no value. */
  expectedImpressions: string | null;
  actualImpressions: string | null;
  expectedSpendMicros: string | null;
  actualSpendMicros: string | null;
}

export interface BreakdownCheck {
  /** The dimensions compared: the configured ones the truth knows. Empty: none compared. */
  dimensions: Dimension[];
  /** Why none was compared (null when some were). */
  notCompared: string | null;
  /** (window, advertiser, campaign, dimension)s compared value by value. */
  exact: number;
  /** (window, advertiser, campaign, dimension)s compared by the `other` rule (the limit was hit). */
  folded: number;
  /** Sorted by window, advertiser, campaign, dimension, value. */
  differences: BreakdownDifference[];
}

interface Sum {
  impressions: bigint;
  spendMicros: bigint;
}

type RowAt = Pick<BreakdownDifference, 'windowStart' | 'advertiserId' | 'campaignId' | 'dimension'>;

/** The dimensions some row of the truth has breakdowns for. */
export function truthDimensions(rows: readonly TruthRow[]): Set<Dimension> {
  const known = new Set<Dimension>();
  for (const r of rows) for (const d of DIMENSIONS) if (r.breakdowns?.[d] !== undefined) known.add(d);
  return known;
}

const cellKey = (row: Parameters<typeof truthRowKey>[0], dimension: string) => `${truthRowKey(row)}|${dimension}`;

function difference(at: RowAt, value: string | null, kind: BreakdownDifferenceKind, expected: Sum | null, actual: Sum | null): BreakdownDifference {
  return {
    ...at, value, kind,
    expectedImpressions: expected && String(expected.impressions),
    actualImpressions: actual && String(actual.impressions),
    expectedSpendMicros: expected && String(expected.spendMicros),
    actualSpendMicros: actual && String(actual.spendMicros),
  };
}

function compareExact(at: RowAt, expected: Map<string, Sum>, actual: Map<string, Sum>, out: BreakdownDifference[]): void {
  for (const [value, e] of expected) {
    const a = actual.get(value);
    if (a === undefined) out.push(difference(at, value, 'missing', e, null));
    else if (a.impressions !== e.impressions || a.spendMicros !== e.spendMicros) out.push(difference(at, value, 'different', e, a));
  }
  for (const [value, a] of actual) if (!expected.has(value)) out.push(difference(at, value, 'extra', null, a));
}

function compareFolded(at: RowAt, expected: Map<string, Sum>, actual: Map<string, Sum>, out: BreakdownDifference[]): void {
  const total = (values: Map<string, Sum>): Sum => {
    const sum: Sum = { impressions: 0n, spendMicros: 0n };
    for (const v of values.values()) {
      sum.impressions += v.impressions;
      sum.spendMicros += v.spendMicros;
    }
    return sum;
  };
  for (const [value, a] of actual) {
    if (value === OTHER_VALUE) continue;
    const e = expected.get(value);
    if (e === undefined) out.push(difference(at, value, 'extra', null, a));
    else if (a.impressions > e.impressions || a.spendMicros > e.spendMicros) out.push(difference(at, value, 'above_truth', e, a));
  }
  const e = total(expected);
  const a = total(actual);
  if (a.impressions !== e.impressions || a.spendMicros !== e.spendMicros) out.push(difference(at, null, 'sum_different', e, a));
}

function compareDifferences(x: BreakdownDifference, y: BreakdownDifference): number {
  const byString = (p: string | null, q: string | null) => (p === q ? 0 : p === null ? -1 : q === null ? 1 : p < q ? -1 : 1);
  const dimensionIndex = (d: string) => (DIMENSIONS as readonly string[]).indexOf(d);
  return x.windowStart - y.windowStart
    || byString(x.advertiserId, y.advertiserId)
    || byString(x.campaignId, y.campaignId)
    || dimensionIndex(x.dimension) - dimensionIndex(y.dimension)
    || byString(x.dimension, y.dimension)
    || byString(x.value, y.value);
}

/**
 * Compares the breakdowns of the `configured` dimensions. A truth row without breakdowns for a
 * dimension (a hand-made truth, an older file) is not compared for it; ClickHouse values of a
 * (window, advertiser, campaign) the truth does not have at all are extra.
 */
export function compareBreakdowns(truthRows: readonly TruthRow[], actualRows: readonly ActualBreakdownRow[], configured: readonly Dimension[]): BreakdownCheck {
  const known = truthDimensions(truthRows);
  const dimensions = configured.filter((d) => known.has(d));
  const notCompared = configured.length === 0 ? 'no dimension configured (TALLY_DIMENSIONS)'
    : known.size === 0 ? 'the truth has no breakdowns' : dimensions.length === 0 ? 'the truth has none of the configured dimensions' : null;
  const check: BreakdownCheck = { dimensions, notCompared, exact: 0, folded: 0, differences: [] };
  if (dimensions.length === 0) return check;

  const cells = new Map<string, { at: RowAt; values: Map<string, Sum> }>();
  for (const a of actualRows) {
    if (!(dimensions as readonly string[]).includes(a.dimension)) continue;
    const k = cellKey(a, a.dimension);
    let cell = cells.get(k);
    if (cell === undefined) {
      cell = { at: { windowStart: a.windowStart, advertiserId: a.advertiserId, campaignId: a.campaignId, dimension: a.dimension }, values: new Map() };
      cells.set(k, cell);
    }
    const held = cell.values.get(a.value) ?? { impressions: 0n, spendMicros: 0n };
    cell.values.set(a.value, { impressions: held.impressions + a.impressions, spendMicros: held.spendMicros + a.spendMicros });
  }

  const out = check.differences;
  const compared = new Set<string>();
  for (const t of truthRows) {
    for (const d of dimensions) {
      const values = t.breakdowns?.[d];
      if (values === undefined) continue;
      const k = cellKey(t, d);
      compared.add(k);
      const expected = new Map(Object.entries(values).map(([v, [impressions, spend]]): [string, Sum] => [v, { impressions: BigInt(impressions), spendMicros: BigInt(spend) }]));
      const actual = cells.get(k)?.values ?? new Map<string, Sum>();
      const at: RowAt = { windowStart: t.windowStart, advertiserId: t.advertiserId, campaignId: t.campaignId, dimension: d };
      if (actual.has(OTHER_VALUE)) {
        check.folded++;
        compareFolded(at, expected, actual, out);
      } else {
        check.exact++;
        compareExact(at, expected, actual, out);
      }
    }
  }
  const truthKeys = new Set(truthRows.map(truthRowKey));
  for (const [k, cell] of cells) {
    if (compared.has(k) || truthKeys.has(truthRowKey(cell.at))) continue;
    for (const [value, a] of cell.values) out.push(difference(cell.at, value, 'extra', null, a));
  }
  out.sort(compareDifferences);
  return check;
}
