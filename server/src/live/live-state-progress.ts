/**
 * LiveState's view of how far each source partition got: its newest watermark (with the wall
 * clock of the transaction that wrote it) and the end of the latest billing period it closed.
 * Neither ever goes back. Pure.
 */

export interface PartitionWatermark {
  partition: number;
  watermark: number;
  emittedAt: number;
}

export class PartitionProgress {
  private readonly watermarks = new Map<number, PartitionWatermark>();
  /** Per partition, the end of the latest billing period it closed. */
  private readonly periodsClosed = new Map<number, number>();
  private ledgerBefore = 0;

  /** `partitions`: all of 0 … partitions−1 must report before a minimum exists. */
  constructor(private readonly partitions: number) {}

  /** A partition's watermark record; an older one is ignored (returns false). */
  applyWatermark(partition: number, watermark: number, emittedAt: number): boolean {
    const held = this.watermarks.get(partition);
    if (held !== undefined && held.watermark > watermark) return false;
    if (held !== undefined && held.watermark === watermark && held.emittedAt >= emittedAt) return false;
    this.watermarks.set(partition, { partition, watermark, emittedAt: Math.max(emittedAt, held?.emittedAt ?? emittedAt) });
    return true;
  }

  /**
   * A partition closed a billing period ending at `periodEnd`. Returns the window starts
   * [from, to) that this moved into the ledger (every partition has closed them), or null.
   */
  applyPeriodClose(partition: number, periodEnd: number): { from: number; to: number } | null {
    if (periodEnd <= (this.periodsClosed.get(partition) ?? 0)) return null;
    this.periodsClosed.set(partition, periodEnd);
    const before = this.ledgerBefore;
    let min = Infinity;
    for (let p = 0; p < this.partitions; p++) min = Math.min(min, this.periodsClosed.get(p) ?? 0);
    this.ledgerBefore = min;
    return min <= before ? null : { from: before, to: min };
  }

  /** Windows starting before this are in the billing ledger (final in every partition); 0: none yet. */
  get ledgerFinalBefore(): number {
    return this.ledgerBefore;
  }

  /** Minimum watermark over partitions 0 … partitions−1; null while one of them never published. */
  minWatermark(): number | null {
    let min = Infinity;
    for (let p = 0; p < this.partitions; p++) {
      const w = this.watermarks.get(p);
      if (w === undefined) return null;
      if (w.watermark < min) min = w.watermark;
    }
    return min;
  }

  /** Per partition 0 … partitions−1 (watermark 0, emittedAt null when none was published). */
  partitionWatermarks(): Array<{ partition: number; watermark: number; emittedAt: number | null }> {
    const out = [];
    for (let p = 0; p < this.partitions; p++) {
      const w = this.watermarks.get(p);
      out.push({ partition: p, watermark: w?.watermark ?? 0, emittedAt: w?.emittedAt ?? null });
    }
    return out;
  }

  /** Wall clock of the newest transaction seen (from the watermark records), or null. */
  get lastEmittedAt(): number | null {
    let max: number | null = null;
    for (const w of this.watermarks.values()) if (max === null || w.emittedAt > max) max = w.emittedAt;
    return max;
  }
}
