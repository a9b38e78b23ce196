import type { InputMark } from './types.js';

/**
 * Event time as one task sees it. A task counts the impressions whose home is its partition; they
 * reach it on two kinds of input: its own source partition of `impressions` (read in order), and
 * the records the other partitions forward to it on the repartition topic, one channel per source
 * partition, each followed in-band by that source's watermark markers. The task's watermark is the
 * minimum over those inputs (Flink's combination of input channels), so no input is judged late
 * because another one got ahead: not a backlog read after an outage, not a forwarded record queued
 * behind the home partition's own traffic.
 *
 * Idle inputs (caught up, no records for the idle timeout) hold nothing back, with one exception:
 * when every input was idle and traffic resumes (or the task was just restored), idle inputs still
 * count for half an idle timeout (the grace), so producers that buffered events during the silence
 * and flush them to several partitions at slightly different moments all land before anything
 * closes. Half, so that a source active for one idle timeout after a silence (a single event)
 * still moves time once the grace is over. While every input is idle, low() is null: idle is not
 * progress, nothing closes by the wall clock.
 */
export class InputWatermarks {
  private readonly marks: InputMark[];
  /** Since when at least one input has been active without a break; null while all are idle. */
  private activeSince: number | null;

  /** Every input starts active at watermark 0 (unknown): nothing closes until each has reported. */
  constructor(partitions: number, private readonly idleTimeoutMs: number, now: number) {
    this.marks = Array.from({ length: partitions }, () => ({ watermark: 0, idle: false }));
    this.activeSince = now;
  }

  /** Records input `source`'s latest mark (its watermark never goes back here); true if anything changed. */
  set(source: number, watermark: number, idle: boolean, now: number): boolean {
    const m = this.marks[source];
    if (m === undefined) throw new RangeError(`no input ${source} (partitions 0–${this.marks.length - 1})`);
    const wm = Math.max(m.watermark, watermark);
    if (wm === m.watermark && idle === m.idle) return false;
    m.watermark = wm;
    m.idle = idle;
    const anyActive = this.marks.some((x) => !x.idle);
    if (!anyActive) this.activeSince = null;
    else if (this.activeSince === null) this.activeSince = now;
    return true;
  }

  /** The lowest watermark among inputs that hold time back; null when all are idle (nothing may close). */
  low(now: number): number | null {
    if (this.activeSince === null) return null;
    const skipIdle = now - this.activeSince >= this.idleTimeoutMs / 2;
    let min = Infinity;
    for (const m of this.marks) if ((!m.idle || !skipIdle) && m.watermark < min) min = m.watermark;
    return min;
  }

  /** A copy of every input's mark, indexed by source partition. */
  snapshot(): InputMark[] {
    return this.marks.map((m) => ({ ...m }));
  }
}
