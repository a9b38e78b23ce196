package dev.tally.bench.kstreams;

import dev.tally.bench.shared.ImpressionParser;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * tally's PartitionState as a Kafka Streams processor: one instance per task, i.e. per input
 * partition, so — like tally — no repartition topic. Every copy of an impression id arrives on its
 * murmur2 home partition (the producer keys by id), so per-task dedup is exact.
 *
 * State (both stores RocksDB with a changelog, Kafka Streams' defaults, i.e. what a user gets):
 * <ul>
 *   <li>{@code dedup}: a WindowStore keyed by impression id, one entry per (id, window start), value
 *       one byte; retention = window + allowed lateness + dedup horizon (+ out-of-orderness as a
 *       margin, because the store expires by the highest window start put, not by the watermark).
 *       Caching off: every id is written once, a cache would only add a copy.</li>
 *   <li>{@code counts}: a KeyValueStore of rows, key {@code windowStart|advertiser|campaign|partition}
 *       (tally's row key), value impressions, spend, duplicates, version and a dirty flag; plus the
 *       task's watermark under {@code watermark|partition}. Caching on, so the many updates of a row
 *       between two commits reach RocksDB and the changelog once.</li>
 * </ul>
 *
 * Emission — the choice that makes the comparison like for like: tally emits each changed row once
 * per transaction (100 ms). Forwarding per record would write one output record per input record,
 * far more than tally writes. So process() only marks rows dirty, and a wall-clock punctuator every
 * commit interval forwards each dirty row once (version + 1, like tally's drain) to the output
 * topic, on the task's own partition, then requests a commit so the rows and the offsets go into
 * the same transaction right away. The dirty flag is in the stored row, so rows changed in a
 * committed transaction but not yet forwarded are found again (init() scans the store) after a crash.
 *
 * Event time as in tally: watermark = max event time − out-of-orderness, per task; an event more than
 * max clock skew ahead of the wall clock is dead-lettered (future_timestamp), one whose window is past
 * the dedup horizon too (too_late); windows past it are evicted and their rows tombstoned. Not
 * ported: idle partitions advancing their watermark by the wall clock (the bench has none).
 */
final class CountProcessor implements Processor<byte[], byte[], byte[], byte[]> {
  static final String DEDUP_STORE = "dedup";
  static final String COUNTS_STORE = "counts";
  static final String COUNTS_SINK = "counts-sink";
  static final String DLQ_SINK = "dlq-sink";

  private static final byte[] PRESENT = {1};
  private static final int ROW_BYTES = 8 * 4 + 1;

  private final Settings settings;
  private final long retentionMs;
  private final ImpressionParser parser = new ImpressionParser();

  private ProcessorContext<byte[], byte[]> context;
  private WindowStore<String, byte[]> dedup;
  private KeyValueStore<String, byte[]> counts;
  private int partition;
  private String taskName;
  private String watermarkKey;
  private String partitionSuffix;

  /** Keys of rows changed since the last emit (their stored dirty flag is set). */
  private final Set<String> dirty = new LinkedHashSet<>();
  /** Window start → its row keys, for eviction. */
  private final TreeMap<Long, Set<String>> windows = new TreeMap<>();
  private long maxTs;
  private long wm;
  private long publishedWm;
  private boolean wmDirty;

  CountProcessor(Settings settings) {
    this.settings = settings;
    this.retentionMs = settings.windowMs + settings.allowedLatenessMs + settings.dedupHorizonMs;
  }

  @Override
  public void init(ProcessorContext<byte[], byte[]> context) {
    this.context = context;
    this.dedup = context.getStateStore(DEDUP_STORE);
    this.counts = context.getStateStore(COUNTS_STORE);
    this.partition = context.taskId().partition();
    this.taskName = context.taskId().toString();
    this.watermarkKey = "watermark|" + partition;
    this.partitionSuffix = "|" + partition;
    // Called after the stores are restored: rebuild the in-memory indexes from them.
    try (KeyValueIterator<String, byte[]> it = counts.all()) {
      while (it.hasNext()) {
        KeyValue<String, byte[]> kv = it.next();
        if (kv.key.equals(watermarkKey)) {
          ByteBuffer b = ByteBuffer.wrap(kv.value);
          maxTs = b.getLong();
          wm = b.getLong();
          publishedWm = wm;
          continue;
        }
        long start = Long.parseLong(kv.key.substring(0, kv.key.indexOf('|')));
        windows.computeIfAbsent(start, s -> new HashSet<>()).add(kv.key);
        if (kv.value[ROW_BYTES - 1] != 0) dirty.add(kv.key);
      }
    }
    Stats.dirtyRows.put(taskName, dirty.size());
    context.schedule(Duration.ofMillis(settings.commitIntervalMs), PunctuationType.WALL_CLOCK_TIME, this::emit);
  }

  @Override
  public void process(Record<byte[], byte[]> record) {
    Stats.records.increment();
    ImpressionParser.Result imp = parser.parse(record.value());
    if (!imp.ok()) {
      deadLetter(record, imp.reason, imp.detail);
      return;
    }
    long ts = imp.ts;
    long now = context.currentSystemTimeMs();
    if (ts > now + settings.maxClockSkewMs) {
      deadLetter(record, "future_timestamp", "ts " + ts + " is " + (ts - now) + " ms ahead of the clock; max skew " + settings.maxClockSkewMs + " ms");
      return;
    }
    long start = ts - Math.floorMod(ts, settings.windowMs);
    if (start + retentionMs <= wm) {
      deadLetter(record, "too_late", "ts " + ts + " falls in window " + start + ", whose dedup horizon ended at " + (start + retentionMs) + "; watermark " + wm);
      return;
    }

    boolean isNew = dedup.fetch(imp.impressionId, start) == null;
    if (isNew) dedup.put(imp.impressionId, PRESENT, start);

    String key = start + "|" + imp.advertiserId + "|" + imp.campaignId + partitionSuffix;
    byte[] stored = counts.get(key);
    ByteBuffer row;
    if (stored == null) {
      row = ByteBuffer.allocate(ROW_BYTES);
      windows.computeIfAbsent(start, s -> new HashSet<>()).add(key);
    } else {
      // The cache hands out its own array: never write into it.
      row = ByteBuffer.wrap(stored.clone());
    }
    if (isNew) {
      row.putLong(0, row.getLong(0) + 1);
      row.putLong(8, row.getLong(8) + imp.costMicros);
      Stats.counted.increment();
    } else {
      row.putLong(16, row.getLong(16) + 1);
      Stats.duplicates.increment();
    }
    row.put(ROW_BYTES - 1, (byte) 1);
    counts.put(key, row.array());
    if (dirty.add(key)) Stats.dirtyRows.put(taskName, dirty.size());

    if (ts > maxTs) {
      maxTs = ts;
      long candidate = ts - settings.outOfOrdernessMs;
      if (candidate > wm) {
        wm = candidate;
        wmDirty = true;
      }
    }
  }

  /** The punctuator: forwards each dirty row once, the watermark, tombstones of evicted windows. */
  private void emit(long now) {
    if (dirty.isEmpty() && !wmDirty && !evictable()) return;
    int n = 0;
    for (String key : dirty) {
      byte[] stored = counts.get(key);
      ByteBuffer row = ByteBuffer.wrap(stored.clone());
      long version = row.getLong(24) + 1;
      row.putLong(24, version);
      row.put(ROW_BYTES - 1, (byte) 0);
      counts.put(key, row.array());
      forwardRow(key, row, version, now);
      n++;
    }
    dirty.clear();
    Stats.dirtyRows.put(taskName, 0);
    Stats.rowsEmitted.add(n);

    if (wmDirty) {
      counts.put(watermarkKey, ByteBuffer.allocate(24).putLong(maxTs).putLong(wm).putLong(now).array());
      String json = "{\"type\":\"watermark\",\"source_partition\":" + partition + ",\"watermark\":" + wm
          + ",\"max_event_time\":" + maxTs + ",\"emitted_at\":" + now + "}";
      context.forward(new Record<>(utf8(watermarkKey), utf8(json), now), COUNTS_SINK);
      wmDirty = false;
    }
    publishedWm = wm;

    // Windows past the dedup horizon: their rows were just emitted (not dirty any more), drop them.
    while (evictable()) {
      Map.Entry<Long, Set<String>> w = windows.pollFirstEntry();
      for (String key : w.getValue()) {
        counts.delete(key);
        context.forward(new Record<>(utf8(key), null, now), COUNTS_SINK);
      }
    }
    Stats.emits.increment();
    // Commit now rather than at the next commit interval: the rows just forwarded, the store
    // updates and the input offsets go into one transaction, as in tally's loop.
    context.commit();
  }

  private boolean evictable() {
    return !windows.isEmpty() && windows.firstKey() + retentionMs <= wm;
  }

  private void forwardRow(String key, ByteBuffer row, long version, long now) {
    int a = key.indexOf('|');
    int b = key.indexOf('|', a + 1);
    int c = key.lastIndexOf('|');
    long start = Long.parseLong(key.substring(0, a));
    long end = start + settings.windowMs;
    long closesAt = end + settings.allowedLatenessMs;
    StringBuilder json = new StringBuilder(256)
        .append("{\"type\":\"window\",\"window_start\":").append(start)
        .append(",\"window_end\":").append(end)
        .append(",\"advertiser_id\":\"").append(key, a + 1, b)
        .append("\",\"campaign_id\":\"").append(key, b + 1, c)
        .append("\",\"source_partition\":").append(partition)
        .append(",\"impressions\":").append(row.getLong(0))
        .append(",\"spend_micros\":").append(row.getLong(8))
        .append(",\"duplicates\":").append(row.getLong(16))
        .append(",\"version\":").append(version)
        .append(",\"final\":").append(wm >= closesAt)
        .append(",\"revised\":").append(publishedWm >= closesAt)
        .append('}');
    context.forward(new Record<>(utf8(key), utf8(json.toString()), now), COUNTS_SINK);
  }

  private void deadLetter(Record<byte[], byte[]> record, String reason, String detail) {
    Stats.deadLetters.increment();
    RecordHeaders h = new RecordHeaders();
    h.add("reason", utf8(reason));
    h.add("detail", utf8(detail.length() > 500 ? detail.substring(0, 500) : detail));
    context.recordMetadata().ifPresent(m -> {
      h.add("source-topic", utf8(m.topic()));
      h.add("source-partition", utf8(Integer.toString(m.partition())));
      h.add("source-offset", utf8(Long.toString(m.offset())));
    });
    context.forward(record.withHeaders(h), DLQ_SINK);
  }

  @Override
  public void close() {
    Stats.dirtyRows.remove(taskName);
  }

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** The window and event-time settings, tally's names and defaults (server/src/config). */
  static final class Settings {
    long windowMs = 60_000;
    long outOfOrdernessMs = 5_000;
    long allowedLatenessMs = 30_000;
    long dedupHorizonMs = 3_600_000;
    long maxClockSkewMs = 300_000;
    long commitIntervalMs = 100;

    /** How long the dedup store keeps a window: see the class comment. */
    long dedupRetentionMs() {
      return windowMs + allowedLatenessMs + dedupHorizonMs + outOfOrdernessMs;
    }

    List<String> describe() {
      List<String> out = new ArrayList<>();
      out.add("windowMs=" + windowMs);
      out.add("outOfOrdernessMs=" + outOfOrdernessMs);
      out.add("allowedLatenessMs=" + allowedLatenessMs);
      out.add("dedupHorizonMs=" + dedupHorizonMs);
      out.add("maxClockSkewMs=" + maxClockSkewMs);
      out.add("commitIntervalMs=" + commitIntervalMs);
      return out;
    }
  }
}
