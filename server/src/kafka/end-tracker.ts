/**
 * When a reader has reached the end of each partition it reads (pure: no I/O).
 *
 * The end is an offset taken before reading. With read_committed, transaction markers and aborted
 * records occupy offsets but are never delivered, so the record at end − 1 may never come. A
 * partition is therefore done when a delivered record reaches or passes the end, or when
 * librdkafka reports partition EOF at or beyond it; a partition a producer keeps appending to
 * (a transaction every 100 ms) may never report EOF, so a record past the end is also proof.
 */
export interface PartitionEnd {
  topic: string;
  partition: number;
  /** The offset to reach: the next offset after the last one to read. */
  end: number;
}

const keyOf = (topic: string, partition: number) => `${topic}:${partition}`;

export class EndTracker {
  private readonly ends = new Map<string, number>();
  private readonly reached = new Map<string, number>();
  private readonly pending = new Set<string>();

  /** `ends` with end ≤ `start` (nothing to read) are done from the outset. */
  constructor(ends: Iterable<PartitionEnd>, start: (topic: string, partition: number) => number = () => 0) {
    for (const e of ends) {
      const key = keyOf(e.topic, e.partition);
      this.ends.set(key, e.end);
      if (e.end > start(e.topic, e.partition)) this.pending.add(key);
    }
  }

  get done(): boolean {
    return this.pending.size === 0;
  }

  /** Partition EOF reported at `offset` (the next offset the partition will have). */
  eof(topic: string, partition: number, offset: number): void {
    const key = keyOf(topic, partition);
    const end = this.ends.get(key);
    if (end === undefined) return;
    this.reached.set(key, Math.max(offset, this.reached.get(key) ?? 0));
    if (offset >= end) this.pending.delete(key);
  }

  /**
   * A delivered record. True if it is within the read (before the end): the caller uses it;
   * false for a record past the end, or of a partition this tracker does not read.
   */
  record(topic: string, partition: number, offset: number): boolean {
    const key = keyOf(topic, partition);
    const end = this.ends.get(key);
    if (end === undefined) return false;
    this.reached.set(key, Math.max(offset + 1, this.reached.get(key) ?? 0));
    if (offset + 1 >= end) this.pending.delete(key);
    return offset < end;
  }

  /** Whether this partition has reached its end (true for one it does not read). */
  reachedEnd(topic: string, partition: number): boolean {
    return !this.pending.has(keyOf(topic, partition));
  }

  /** Partitions not yet at their end, with where each got to ("topic:p at 12 of 40"), for a timeout error. */
  describePending(): string {
    return [...this.pending].map((key) => `${key} at ${this.reached.get(key) ?? 'start'} of ${this.ends.get(key)}`).join(', ');
  }
}
