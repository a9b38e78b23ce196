package dev.tally.bench.flink;

import org.apache.flink.streaming.api.windowing.triggers.Trigger;
import org.apache.flink.streaming.api.windowing.triggers.TriggerResult;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;

/**
 * When a window's row is emitted, tally's way: every interval in which it changed (tally writes each
 * changed row once per transaction), and once more when the watermark passes window end + allowed
 * lateness (the row tally marks final). Flink's default EventTimeTrigger would emit a row only at
 * window end, so a count would not be visible until a minute after its first event, and the last
 * windows of a topic that stops growing would never appear.
 *
 * The processing-time timers sit on interval boundaries, so the many elements of one row in one
 * interval share a single timer (Flink keeps one timer per key, window and time). FIRE never purges:
 * the window keeps counting late events until its cleanup (allowed lateness in WindowCount).
 */
final class EmitEveryInterval extends Trigger<Object, TimeWindow> {
  private static final long serialVersionUID = 1L;

  private final long intervalMs;
  private final long finalAfterMs;

  EmitEveryInterval(long intervalMs, long finalAfterMs) {
    this.intervalMs = intervalMs;
    this.finalAfterMs = finalAfterMs;
  }

  private long closesAt(TimeWindow w) {
    return w.maxTimestamp() + finalAfterMs;
  }

  @Override
  public TriggerResult onElement(Object element, long timestamp, TimeWindow w, TriggerContext ctx) {
    if (closesAt(w) > ctx.getCurrentWatermark()) ctx.registerEventTimeTimer(closesAt(w));
    long now = ctx.getCurrentProcessingTime();
    ctx.registerProcessingTimeTimer(now - now % intervalMs + intervalMs);
    return TriggerResult.CONTINUE;
  }

  @Override
  public TriggerResult onProcessingTime(long time, TimeWindow w, TriggerContext ctx) {
    return TriggerResult.FIRE;
  }

  @Override
  public TriggerResult onEventTime(long time, TimeWindow w, TriggerContext ctx) {
    // The window operator's own cleanup timer (end + its allowed lateness) also lands here.
    return time == closesAt(w) ? TriggerResult.FIRE : TriggerResult.CONTINUE;
  }

  @Override
  public void clear(TimeWindow w, TriggerContext ctx) {
    ctx.deleteEventTimeTimer(closesAt(w));
  }

  @Override
  public String toString() {
    return "EmitEveryInterval(" + intervalMs + " ms, final after " + finalAfterMs + " ms)";
  }
}
