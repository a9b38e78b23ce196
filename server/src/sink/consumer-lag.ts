/**
 * The counts sink's lag gauge (tally_sink_consumer_lag): per owned partition, records of the topic
 * not yet committed by the sink — the end offset as of the last fetch minus the committed offset.
 */
import type { Gauge } from 'prom-client';
import type { Consumer } from '../kafka/index.js';
import { Throttle } from '../observability/index.js';
import type { PartitionOffset } from './partition-offsets.js';

const LAG_EVERY_MS = 1_000;
const COMMITTED_TIMEOUT_MS = 10_000;

export class ConsumerLag {
  private readonly committedOffsets = new Map<number, number>();
  private readonly throttle = new Throttle(LAG_EVERY_MS);
  private partitions: number[] = [];
  /** Bumped on every rebalance: committed offsets fetched for an older assignment are dropped. */
  private epoch = 0;

  constructor(private readonly consumer: Consumer, private readonly topic: string, private readonly gauge: Gauge<'partition'>) {}

  /** Newly owned partitions: their committed offsets are fetched in the background. */
  assigned(partitions: number[]): void {
    const epoch = this.reset();
    this.partitions = partitions;
    if (partitions.length === 0) return;
    this.consumer.committed(partitions.map((partition) => ({ topic: this.topic, partition })), COMMITTED_TIMEOUT_MS).then((tps) => {
      if (epoch !== this.epoch) return;
      for (const tp of tps) if (!this.committedOffsets.has(tp.partition)) this.committedOffsets.set(tp.partition, Math.max(0, tp.offset));
      this.update(true);
    }, () => undefined); // lag unknown until the next commit
  }

  revoked(): void {
    this.reset();
    this.partitions = [];
  }

  committed(offsets: PartitionOffset[]): void {
    for (const o of offsets) this.committedOffsets.set(o.partition, o.offset);
    this.update(true);
  }

  /** Sets the gauge, at most once a second unless `force`. */
  update(force: boolean): void {
    const now = Date.now();
    if (force) this.throttle.mark(now);
    else if (!this.throttle.ready(now)) return;
    for (const p of this.partitions) {
      const base = this.committedOffsets.get(p);
      const high = this.consumer.cachedHighOffset(this.topic, p);
      // Nothing fetched yet for the partition: lag unknown.
      if (base !== undefined && high !== undefined) this.gauge.set({ partition: String(p) }, Math.max(0, high - base));
    }
  }

  private reset(): number {
    this.gauge.reset();
    this.committedOffsets.clear();
    return ++this.epoch;
  }
}
