import type { Consumer } from '../kafka/index.js';
import type { AggregatorMetrics } from './aggregator-metrics.js';
import type { PartitionTask } from './partition-task.js';

/** The per-task gauges (watermarks, idle inputs, lag, memory held), updated at most once a second. */
export class TaskGauges {
  private updatedAt = 0;

  constructor(private readonly metrics: AggregatorMetrics, private readonly consumer: Consumer, private readonly sourceTopic: string) {}

  /** Once a second: the lag reads librdkafka's cached watermarks, which takes its lock (~0.1 ms a partition). */
  maybeUpdate(now: number, tasks: Iterable<PartitionTask>): void {
    if (now - this.updatedAt < 1000) return;
    this.updatedAt = now;
    const m = this.metrics;
    let windows = 0;
    let ids = 0;
    let bytes = 0;
    for (const task of tasks) {
      const s = task.state;
      windows += s.windowsOpen;
      ids += s.idsHeld;
      bytes += s.dedupBytes;
      const partition = String(task.partition);
      m.watermark.set({ partition }, s.watermark);
      s.inputMarks.forEach((mark, input) => {
        m.inputWatermark.set({ partition, input: String(input) }, mark.watermark);
        m.inputIdle.set({ partition, input: String(input) }, mark.idle ? 1 : 0);
      });
      const high = this.consumer.cachedHighOffset(this.sourceTopic, task.partition);
      // No fetch yet for this partition: lag unknown.
      if (high !== undefined) m.lag.set({ partition }, Math.max(0, high - task.nextSourceOffset));
    }
    m.windowsOpen.set(windows);
    m.idsHeld.set(ids);
    m.dedupBytes.set(bytes);
  }
}
