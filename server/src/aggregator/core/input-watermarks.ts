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
 * Idle inputs (caught up, no records for the idle timeout) hold nothing back while the claim holds:
 * the shell keeps every source partition's end offset fresh, and an idle mark counts only while
 * its source has read to that end (its position). New records behind a stalled consumer void it.
 * One exception:
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
    this.marks = Array.from({ length: partitions }, () => ({ watermark: 0, idle: false, position: null }));
    this.activeSince = now;
  }

  /** Records input `source`'s latest mark (its watermark never goes back here); true if anything changed. */
  set(source: number, mark: InputMark, now: number): boolean {
    const m = this.marks[source];
    if (m === undefined) throw new RangeError(`no input ${source} (partitions 0–${this.marks.length - 1})`);
    const wm = Math.max(m.watermark, mark.watermark);
    if (wm === m.watermark && mark.idle === m.idle && mark.position === m.position) return false;
    m.watermark = wm;
    m.idle = mark.idle;
    m.position = mark.position;
    const anyActive = this.marks.some((x) => !x.idle);
    if (!anyActive) this.activeSince = null;
    else if (this.activeSince === null) this.activeSince = now;
    return true;
  }

  /**
   * The lowest watermark among inputs that hold time back; null when none does (every input idle:
   * nothing may close). `ends`: each source partition's end offset as recently seen (missing: unknown).
   */
  low(now: number, ends: ReadonlyMap<number, number>): number | null {
    const graceOver = this.activeSince !== null && now - this.activeSince >= this.idleTimeoutMs / 2;
    let min = Infinity;
    let holding = false;
    this.marks.forEach((m, source) => {
      const end = ends.get(source);
      const idle = m.idle && m.position !== null && end !== undefined && end <= m.position + 1;
      // A transaction marker may follow the last record: one offset of slack, as for caught-up.
      if (idle && (graceOver || this.activeSince === null)) return;
      holding = true;
      if (m.watermark < min) min = m.watermark;
    });
    return holding ? min : null;
  }

  /** A copy of every input's mark, indexed by source partition. */
  snapshot(): InputMark[] {
    return this.marks.map((m) => ({ ...m }));
  }
}
