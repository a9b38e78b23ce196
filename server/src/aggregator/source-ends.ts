import type { Consumer } from '../kafka/index.js';
import type { PartitionTask } from './partition-task.js';

/** A source end older than this is unknown: an idle claim cannot be checked against it, so it holds. */
const FRESH_MS = 5_000;
const QUERY_EVERY_MS = 1_000;

/**
 * Where the source partitions end, for idle checks. A task's source is idle when it has read to
 * the end and no record moved its event time for the idle timeout. An input that said it is idle
 * counts as idle only while its source has read to the end as last queried here (every partition,
 * in the background, about once a second): a source whose consumer stalled (a paused or dead
 * process) while records arrive holds everyone back.
 */
export class SourceEnds {
  private readonly ends = new Map<number, { end: number; at: number }>();
  private queriedAt = 0;
  private querying = false;

  constructor(
    private readonly consumer: Consumer,
    private readonly topic: string,
    private readonly partitions: number,
    private readonly idleTimeoutMs: number,
  ) {}

  /** Starts querying every partition's end if the last query is a second old; does not wait for it. */
  refresh(now: number): void {
    if (this.querying || now - this.queriedAt < QUERY_EVERY_MS) return;
    this.querying = true;
    this.queriedAt = now;
    const queries = Array.from({ length: this.partitions }, (_, p) => this.consumer.queryWatermarkOffsets(this.topic, p, 5_000).then(
      (o) => { this.ends.set(p, { end: o.highOffset, at: Date.now() }); },
      () => undefined, // unknown this time: the last end seen goes stale instead
    ));
    void Promise.all(queries).finally(() => { this.querying = false; });
  }

  /** Every partition's end as last queried, if fresh at `now`. */
  fresh(now: number): Map<number, number> {
    const out = new Map<number, number>();
    for (const [p, e] of this.ends) if (now - e.at <= FRESH_MS) out.set(p, e.end);
    return out;
  }

  /** The task's source is caught up and no record has moved its event time for the idle timeout. */
  idle(task: PartitionTask, now: number): boolean {
    return now - task.lastSourceEventAt >= this.idleTimeoutMs && this.caughtUp(task);
  }

  /** At the end of the source partition as last fetched (a transaction marker may sit after the last record). */
  private caughtUp(task: PartitionTask): boolean {
    const high = this.consumer.cachedHighOffset(this.topic, task.partition);
    return high !== undefined && high - task.nextSourceOffset <= 1;
  }
}
