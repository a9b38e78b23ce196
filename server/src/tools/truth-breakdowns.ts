/**
 * The ground truth by dimension: per truth row (window, advertiser, campaign), each dimension's
 * values with their impressions and exact spend, as the aggregator must count them
 * (`dimensionValueOf` of the event's field; every dimension of DIMENSIONS, whatever
 * TALLY_DIMENSIONS says: verify compares the configured ones).
 *
 * In a truth file, per dimension a map value → [impressions, spend micros as a decimal string]:
 * compact, and exact beyond 2^53. A value may be any printable string ("__proto__" included), so
 * these maps are built with Object.fromEntries and read with Object.entries only, never indexed.
 */
import { DIMENSIONS, dimensionValueOf, isDimension, type Dimension } from '../contracts/dimensions.js';

/** One value's [impressions, spend micros as a decimal string]. */
export type TruthValueCounts = [impressions: number, spendMicros: string];

/** A row's values by dimension; a dimension absent is not known (not compared). */
export type TruthBreakdowns = Partial<Record<Dimension, Record<string, TruthValueCounts>>>;

/** An impression's value of every dimension, as the aggregator counts it. */
export type DimensionValues = Record<Dimension, string>;

/** The values an event body (a parsed JSON object) counts under: missing or unusable fields are `unknown`. */
export function dimensionValuesOf(body: object): DimensionValues {
  const fields = body as Readonly<Record<string, unknown>>;
  const out = {} as DimensionValues;
  for (const d of DIMENSIONS) out[d] = dimensionValueOf(Object.hasOwn(fields, d) ? fields[d] : undefined);
  return out;
}

/** One value's impressions and exact spend. */
interface ValueSum {
  impressions: number;
  spendMicros: bigint;
}

/** One row's breakdowns being summed (a plan's counted impressions, or two truths' rows), exact. */
export class BreakdownSums {
  private readonly byDimension = new Map<Dimension, Map<string, ValueSum>>();

  /** One counted impression: it adds to one value of every dimension. */
  addImpression(values: DimensionValues, costMicros: number): void {
    const spend = BigInt(costMicros);
    for (const d of DIMENSIONS) this.add(d, values[d], 1, spend);
  }

  add(dimension: Dimension, value: string, impressions: number, spendMicros: bigint): void {
    let values = this.byDimension.get(dimension);
    if (values === undefined) this.byDimension.set(dimension, (values = new Map()));
    const sum = values.get(value);
    if (sum === undefined) {
      values.set(value, { impressions, spendMicros });
    } else {
      sum.impressions += impressions;
      sum.spendMicros += spendMicros;
    }
  }

  /** The file form, values sorted. */
  toTruth(): TruthBreakdowns {
    const out: TruthBreakdowns = {};
    for (const d of DIMENSIONS) {
      const values = this.byDimension.get(d);
      if (values === undefined) continue;
      const sorted = [...values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      out[d] = Object.fromEntries(sorted.map(([v, s]): [string, TruthValueCounts] => [v, [s.impressions, String(s.spendMicros)]]));
    }
    return out;
  }
}

/**
 * The breakdowns of one row counted in two truths. A dimension only one of them knows is not known
 * for the sum; undefined when no dimension is left (or either side knows none).
 */
export function mergeBreakdowns(a: TruthBreakdowns | undefined, b: TruthBreakdowns | undefined): TruthBreakdowns | undefined {
  if (a === undefined || b === undefined) return undefined;
  const sums = new BreakdownSums();
  for (const d of DIMENSIONS) {
    const x = a[d];
    const y = b[d];
    if (x === undefined || y === undefined) continue;
    for (const [value, [impressions, spend]] of [...Object.entries(x), ...Object.entries(y)]) sums.add(d, value, impressions, BigInt(spend));
  }
  const merged = sums.toTruth();
  return Object.keys(merged).length === 0 ? undefined : merged;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * Checks a row's breakdowns from a truth file: known dimensions, each value [impressions ≥ 1,
 * decimal spend], each dimension summing to the row. `bad` throws naming what is wrong.
 */
export function parseBreakdowns(value: unknown, row: { impressions: number; spendMicros: number }, bad: (what: string) => never): TruthBreakdowns {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('not an object');
  const out: TruthBreakdowns = {};
  for (const [dimension, values] of Object.entries(value)) {
    if (!isDimension(dimension)) return bad(`${JSON.stringify(dimension)} is not a dimension`);
    if (typeof values !== 'object' || values === null || Array.isArray(values)) return bad(`${dimension}: not an object`);
    let impressions = 0;
    let spend = 0n;
    const checked = Object.entries(values as Record<string, unknown>).map(([v, counts]): [string, TruthValueCounts] => {
      if (!Array.isArray(counts) || counts.length !== 2 || !isCount(counts[0]) || typeof counts[1] !== 'string' || !DECIMAL.test(counts[1])) {
        return bad(`${dimension}.${JSON.stringify(v)}: not [impressions, "spend micros"]`);
      }
      impressions += counts[0];
      spend += BigInt(counts[1]);
      return [v, [counts[0], counts[1]]];
    });
    if (impressions !== row.impressions || spend !== BigInt(row.spendMicros)) return bad(`${dimension}: its values do not sum to the row`);
    out[dimension] = Object.fromEntries(checked);
  }
  return out;
}
