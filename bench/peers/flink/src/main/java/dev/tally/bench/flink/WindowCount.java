package dev.tally.bench.flink;

import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;

/** The count of one (window, advertiser|campaign): impressions, spend and duplicates, and its output row. */
final class WindowCount {
  private WindowCount() {}

  /** Accumulator {impressions, spend micros, duplicates}: three longs per row in the window state. */
  static final class Sum implements AggregateFunction<Impression, long[], long[]> {
    private static final long serialVersionUID = 1L;

    @Override
    public long[] createAccumulator() {
      return new long[3];
    }

    @Override
    public long[] add(Impression imp, long[] acc) {
      if (imp.duplicate) {
        acc[2]++;
      } else {
        acc[0]++;
        acc[1] += imp.costMicros;
      }
      return acc;
    }

    @Override
    public long[] getResult(long[] acc) {
      return acc.clone();
    }

    @Override
    public long[] merge(long[] a, long[] b) {
      return new long[] {a[0] + b[0], a[1] + b[1], a[2] + b[2]};
    }
  }

  /**
   * The row as the Kafka Streams peer writes it (a JSON window record keyed
   * {@code windowStart|advertiser|campaign}; the latest version of a key is the count), with
   * {@code final} once the watermark has passed window end + allowed lateness.
   */
  static final class ToRow extends ProcessWindowFunction<long[], WindowRow, String, TimeWindow> {
    private static final long serialVersionUID = 1L;

    private final long allowedLatenessMs;

    ToRow(long allowedLatenessMs) {
      this.allowedLatenessMs = allowedLatenessMs;
    }

    @Override
    public void process(String row, Context ctx, Iterable<long[]> sums, Collector<WindowRow> out) {
      long[] s = sums.iterator().next();
      TimeWindow w = ctx.window();
      int bar = row.indexOf('|');
      String json = "{\"type\":\"window\",\"window_start\":" + w.getStart() + ",\"window_end\":" + w.getEnd()
          + ",\"advertiser_id\":\"" + row.substring(0, bar) + "\",\"campaign_id\":\"" + row.substring(bar + 1)
          + "\",\"impressions\":" + s[0] + ",\"spend_micros\":" + s[1] + ",\"duplicates\":" + s[2]
          + ",\"final\":" + (ctx.currentWatermark() >= w.maxTimestamp() + allowedLatenessMs) + "}";
      Stats.rowsEmitted.increment();
      out.collect(new WindowRow(w.getStart() + "|" + row, json));
    }
  }
}
