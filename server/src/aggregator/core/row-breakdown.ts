import { OTHER_VALUE, UNKNOWN_VALUE, type Dimension } from '../../contracts/dimensions.js';
import type { DimensionBreakdown } from '../../contracts/count-record.js';
import { addSpend, setSpend, spendOf, type SpendSum } from './spend-sum.js';

/** One value's counts within a row. */
interface Cell extends SpendSum {
  impressions: number;
}

/** One dimension of a row: its values, and how many of them are named (not `other`). */
interface DimensionCells {
  cells: Map<string, Cell>;
  named: number;
}

/**
 * A window row's counts by each configured dimension. Every impression adds to exactly one value
 * of each dimension, so each dimension sums to the row. The first `valueLimit` distinct values of
 * a dimension are kept by name; later new ones add to `other`, so a row's size is bounded whatever
 * producers send. Which values get a name depends on the order records are read in; the counts are
 * exact either way, and after a restore the named values are the restored ones.
 */
export class RowBreakdown {
  private readonly byDimension: DimensionCells[];

  constructor(private readonly dimensions: readonly Dimension[], private readonly valueLimit: number) {
    this.byDimension = dimensions.map(() => ({ cells: new Map(), named: 0 }));
  }

  /** One impression with these values (in the configured dimensions' order). */
  add(values: readonly string[], costMicros: number): void {
    const dims = this.byDimension;
    for (let d = 0; d < dims.length; d++) {
      const cell = this.cellFor(dims[d], values[d]);
      cell.impressions++;
      addSpend(cell, costMicros);
    }
  }

  /** Every value of every dimension, as the window record carries them. */
  snapshot(): DimensionBreakdown[] {
    return this.dimensions.map((dimension, d) => ({
      dimension,
      values: [...this.byDimension[d].cells].map(([value, cell]) => ({ value, impressions: cell.impressions, spendMicros: spendOf(cell) })),
    }));
  }

  /**
   * The breakdowns of a restored row. A configured dimension the record lacks (it was added to
   * TALLY_DIMENSIONS since) starts as one `unknown` value holding the row's totals so far, so it
   * still sums to the row; a dimension no longer configured is dropped.
   */
  restore(breakdowns: readonly DimensionBreakdown[], rowImpressions: number, rowSpendMicros: bigint): void {
    this.dimensions.forEach((dimension, d) => {
      const dim: DimensionCells = { cells: new Map(), named: 0 };
      this.byDimension[d] = dim;
      const stored = breakdowns.find((b) => b.dimension === dimension);
      const values = stored?.values ?? (rowImpressions > 0 ? [{ value: UNKNOWN_VALUE, impressions: rowImpressions, spendMicros: rowSpendMicros }] : []);
      for (const v of values) {
        const cell: Cell = { impressions: v.impressions, spendLow: 0, spendHigh: 0 };
        setSpend(cell, v.spendMicros);
        dim.cells.set(v.value, cell);
        if (v.value !== OTHER_VALUE) dim.named++;
      }
    });
  }

  private cellFor(dim: DimensionCells, value: string): Cell {
    let cell = dim.cells.get(value);
    if (cell !== undefined) return cell;
    let key = value;
    if (value !== OTHER_VALUE) {
      if (dim.named >= this.valueLimit) {
        key = OTHER_VALUE;
        cell = dim.cells.get(key);
        if (cell !== undefined) return cell;
      } else {
        dim.named++;
      }
    }
    cell = { impressions: 0, spendLow: 0, spendHigh: 0 };
    dim.cells.set(key, cell);
    return cell;
  }
}
