/**
 * How many records the loop asks node-rdkafka's consume(n) for. consume(n) returns once it has n
 * records or none arrived for its timeout, so when records trickle in (caught up, 20k/s spread
 * over eight partitions) a batch of 5,000 waits 250 ms for the last one — latency nobody asked
 * for. With a backlog the records are queued locally and any n returns at once, and big batches
 * are cheaper. So: grow while full batches come back fast, shrink to what arrives in `targetMs`
 * when a call spent longer than that waiting.
 */
export class ConsumeBatchSize {
  private n: number;

  constructor(
    private readonly min = 100,
    private readonly max = 5_000,
    /** Above the ~10 ms node-rdkafka needs to hand over 5,000 queued records, so a backlog keeps the maximum. */
    private readonly targetMs = 25,
  ) {
    this.n = max;
  }

  get next(): number {
    return this.n;
  }

  /** One consume(next) call returned `count` records after `elapsedMs`. */
  observe(count: number, elapsedMs: number): void {
    if (elapsedMs > this.targetMs) {
      const arrivedInTarget = Math.floor((count * this.targetMs) / elapsedMs);
      this.n = Math.min(this.max, Math.max(this.min, arrivedInTarget));
    } else if (count >= this.n) {
      this.n = Math.min(this.max, this.n * 2);
    }
  }
}
