import type { LateCount, OpenPeriod, PeriodClose, PeriodRow, RecordOrigin } from './types.js';
import { PERIOD_MS } from './types.js';

interface OpenEntry {
  firstSourceOffset: number | null;
  firstChannelOffset: number | null;
  /** `${advertiserId}\n${originalPeriodStart}` → count */
  late: Map<string, LateCount>;
}

export function periodOf(ts: number): number {
  return ts - (((ts % PERIOD_MS) + PERIOD_MS) % PERIOD_MS);
}

/**
 * The billing periods (UTC hours) of one task, pure: which are closed (`closedBefore`), and for each
 * open one the lineage gathered so far (the first offset of each input that contributed) and the
 * events refused as too_late while the task's watermark was in it (reported there, never in their
 * own, closed, period). PartitionState decides when a period can close and hands its rows in;
 * this class keeps the rest and builds the close.
 */
export class PeriodBook {
  private before = 0;
  private readonly open = new Map<number, OpenEntry>();
  private changed = false;

  /** Periods starting before this are closed (0: none closed yet). */
  get closedBefore(): number {
    return this.before;
  }

  /** True when something worth persisting changed since the last takeChanged(). */
  takeChanged(): boolean {
    const c = this.changed;
    this.changed = false;
    return c;
  }

  /** A record counted (or a duplicate) into a window of `windowStart`, read at `origin`. */
  noteContribution(windowStart: number, origin: RecordOrigin): void {
    const e = this.entry(periodOf(windowStart));
    if (origin.input === 'source') {
      if (e.firstSourceOffset === null || origin.offset < e.firstSourceOffset) {
        e.firstSourceOffset = origin.offset;
        this.changed = true;
      }
    } else if (e.firstChannelOffset === null || origin.offset < e.firstChannelOffset) {
      e.firstChannelOffset = origin.offset;
      this.changed = true;
    }
  }

  /** An event of `advertiserId` stamped in `originalPeriodStart`, refused as too_late at watermark `watermark`. */
  noteLate(advertiserId: string, originalPeriodStart: number, watermark: number): void {
    const e = this.entry(periodOf(watermark));
    const key = `${advertiserId}\n${originalPeriodStart}`;
    const held = e.late.get(key);
    if (held) held.events++;
    else e.late.set(key, { advertiserId, originalPeriodStart, events: 1 });
    this.changed = true;
  }

  /** The earliest open period with lineage or late counts, or null. */
  get earliestOpen(): number | null {
    let min: number | null = null;
    for (const p of this.open.keys()) if (min === null || p < min) min = p;
    return min;
  }

  /** Starts closing at `periodStart` (the first drain that can close anything, or a restore of an older record). */
  startAt(periodStart: number): void {
    if (this.before === 0) {
      this.before = periodStart;
      this.changed = true;
    }
  }

  /** Closes the next period (`closedBefore`) with the rows summed from its windows. */
  close(rows: PeriodRow[], rowKeys: string[], watermark: number): PeriodClose {
    const periodStart = this.before;
    const e = this.open.get(periodStart);
    this.open.delete(periodStart);
    this.before = periodStart + PERIOD_MS;
    this.changed = true;
    const late = [...(e?.late.values() ?? [])].sort((a, b) => a.originalPeriodStart - b.originalPeriodStart || (a.advertiserId < b.advertiserId ? -1 : a.advertiserId > b.advertiserId ? 1 : 0));
    rows.sort((a, b) => (a.advertiserId < b.advertiserId ? -1 : a.advertiserId > b.advertiserId ? 1 : a.campaignId < b.campaignId ? -1 : a.campaignId > b.campaignId ? 1 : 0));
    return {
      periodStart, rows, late, rowKeys, watermark,
      firstSourceOffset: e?.firstSourceOffset ?? null,
      firstChannelOffset: e?.firstChannelOffset ?? null,
    };
  }

  /** The open periods, for the progress record. */
  snapshot(): OpenPeriod[] {
    return [...this.open.entries()].sort((a, b) => a[0] - b[0]).map(([periodStart, e]) => ({
      periodStart, firstSourceOffset: e.firstSourceOffset, firstChannelOffset: e.firstChannelOffset, late: [...e.late.values()].map((l) => ({ ...l })),
    }));
  }

  restore(closedBefore: number, open: readonly OpenPeriod[]): void {
    this.before = Math.max(this.before, closedBefore);
    for (const p of open) {
      if (p.periodStart < this.before) continue;
      this.open.set(p.periodStart, {
        firstSourceOffset: p.firstSourceOffset,
        firstChannelOffset: p.firstChannelOffset,
        late: new Map(p.late.map((l) => [`${l.advertiserId}\n${l.originalPeriodStart}`, { ...l }])),
      });
    }
  }

  private entry(periodStart: number): OpenEntry {
    let e = this.open.get(periodStart);
    if (e === undefined) {
      e = { firstSourceOffset: null, firstChannelOffset: null, late: new Map() };
      this.open.set(periodStart, e);
    }
    return e;
  }
}
