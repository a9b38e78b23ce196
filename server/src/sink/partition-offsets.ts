/** An offset of one partition of the topic a sink reads (tally's topics share partition numbers). */
export interface PartitionOffset {
  partition: number;
  offset: number;
}

/**
 * The highest offset per partition, pure: a batch's offsets to commit (last offset read + 1) and
 * the sink's acknowledged-but-uncommitted offsets, which only ever move forward.
 */
export class PartitionOffsets {
  private readonly byPartition = new Map<number, number>();

  /** Keeps `offset` for `partition` unless a higher one is held already. */
  advance(partition: number, offset: number): void {
    const held = this.byPartition.get(partition);
    if (held === undefined || offset > held) this.byPartition.set(partition, offset);
  }

  advanceAll(offsets: Iterable<PartitionOffset>): void {
    for (const o of offsets) this.advance(o.partition, o.offset);
  }

  get size(): number {
    return this.byPartition.size;
  }

  /** Sorted by partition. */
  entries(): PartitionOffset[] {
    return [...this.byPartition].sort((a, b) => a[0] - b[0]).map(([partition, offset]) => ({ partition, offset }));
  }

  clear(): void {
    this.byPartition.clear();
  }
}
