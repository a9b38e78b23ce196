package dev.tally.bench.kstreams;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.StreamPartitioner;
import org.apache.kafka.streams.state.Stores;

/**
 * Entry point of the Kafka Streams peer. Prints one JSON line per event on stdout (the bench runner
 * reads them): {"type":"config",…} at start, {"type":"state",…} on every KafkaStreams state change,
 * {"type":"summary",…} every --summary-ms and once more after close. Kafka's own log (WARN and up)
 * goes to stderr.
 *
 * Topology (one sub-topology, no repartition, no internal topics but the two store changelogs):
 *   source(input) → count (CountProcessor, stores dedup + counts) → counts-sink(output, same partition)
 *                                                                 → dlq-sink(dlq)
 */
public final class Main {
  private static final String USAGE = String.join("\n",
      "usage: java -jar tally-kafka-streams-peer.jar --bootstrap HOST:PORT --application-id ID --input TOPIC --output TOPIC --dlq TOPIC [options]",
      "  --threads N                 num.stream.threads (default 1, like one tally aggregator)",
      "  --state-dir DIR             state.dir (default: Kafka Streams' default under java.io.tmpdir)",
      "  --window-ms N               tumbling window (default 60000, TALLY_WINDOW_MS)",
      "  --out-of-orderness-ms N     default 5000 (TALLY_OUT_OF_ORDERNESS_MS)",
      "  --allowed-lateness-ms N     default 30000 (TALLY_ALLOWED_LATENESS_MS)",
      "  --dedup-horizon-ms N        default 3600000 (TALLY_DEDUP_HORIZON_MS)",
      "  --max-clock-skew-ms N       default 300000 (TALLY_MAX_CLOCK_SKEW_MS)",
      "  --commit-interval-ms N      commit.interval.ms and the emit punctuation (default 100)",
      "  --summary-ms N              summary line interval (default 1000)",
      "  --log-level LEVEL           Kafka's log level on stderr (default warn)",
      "or:    java -jar tally-kafka-streams-peer.jar --bootstrap HOST:PORT --application-id ID --delete-group true",
      "  deletes the consumer group of a stopped run (removing its members first)");

  private Main() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parseArgs(argv);
    if (args.containsKey("help")) {
      System.out.println(USAGE);
      return;
    }
    // Before the first logger exists.
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", args.getOrDefault("log-level", "warn"));
    System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
    System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");

    String bootstrap = required(args, "bootstrap");
    String appId = required(args, "application-id");
    if (args.containsKey("delete-group")) {
      deleteGroup(bootstrap, appId);
      return;
    }
    String input = required(args, "input");
    String output = required(args, "output");
    String dlq = required(args, "dlq");
    int threads = Integer.parseInt(args.getOrDefault("threads", "1"));
    long summaryMs = Long.parseLong(args.getOrDefault("summary-ms", "1000"));

    CountProcessor.Settings settings = new CountProcessor.Settings();
    settings.windowMs = longArg(args, "window-ms", settings.windowMs);
    settings.outOfOrdernessMs = longArg(args, "out-of-orderness-ms", settings.outOfOrdernessMs);
    settings.allowedLatenessMs = longArg(args, "allowed-lateness-ms", settings.allowedLatenessMs);
    settings.dedupHorizonMs = longArg(args, "dedup-horizon-ms", settings.dedupHorizonMs);
    settings.maxClockSkewMs = longArg(args, "max-clock-skew-ms", settings.maxClockSkewMs);
    settings.commitIntervalMs = longArg(args, "commit-interval-ms", settings.commitIntervalMs);

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.toString(settings.commitIntervalMs));
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.toString(threads));
    if (args.containsKey("state-dir")) props.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state-dir"));
    // Everything else is Kafka Streams' default (read_committed, earliest, 10 MB record cache,
    // max.poll.records 1000, linger.ms 100, transaction.timeout.ms 10 s), as a user would run it.

    Topology topology = buildTopology(input, output, dlq, settings);

    KafkaStreams streams = new KafkaStreams(topology, props);
    long started = System.currentTimeMillis();
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((to, from) -> {
      line("{\"type\":\"state\",\"from\":\"" + from + "\",\"to\":\"" + to + "\",\"elapsed_ms\":" + (System.currentTimeMillis() - started) + "}");
      if (to == KafkaStreams.State.ERROR || to == KafkaStreams.State.NOT_RUNNING) stopped.countDown();
    });
    streams.setUncaughtExceptionHandler(e -> {
      line("{\"type\":\"error\",\"message\":" + quote(String.valueOf(e)) + "}");
      e.printStackTrace();
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });

    line("{\"type\":\"config\",\"application_id\":" + quote(appId) + ",\"threads\":" + threads
        + ",\"processing_guarantee\":\"exactly_once_v2\",\"settings\":" + quote(String.join(" ", settings.describe()))
        + ",\"stores\":\"dedup: RocksDB window store, counts: RocksDB key-value store with caching; both logged\"}");

    Thread summary = new Thread(() -> {
      try {
        while (!Thread.currentThread().isInterrupted()) {
          Thread.sleep(summaryMs);
          summaryLine(streams, started, false);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "summary");
    summary.setDaemon(true);

    Thread hook = new Thread(() -> {
      summary.interrupt();
      // A clean close commits every task (rows, store changelogs and offsets in one last transaction).
      boolean closed = streams.close(Duration.ofSeconds(30));
      summaryLine(streams, started, true);
      if (!closed) line("{\"type\":\"error\",\"message\":\"close timed out\"}");
      System.out.flush();
    }, "shutdown");
    Runtime.getRuntime().addShutdownHook(hook);

    streams.start();
    summary.start();
    stopped.await();
    // ERROR or NOT_RUNNING by itself (not via the hook): exit non-zero so the runner notices.
    if (streams.state() == KafkaStreams.State.ERROR) {
      Runtime.getRuntime().removeShutdownHook(hook);
      summary.interrupt();
      streams.close(Duration.ofSeconds(10));
      summaryLine(streams, started, true);
      System.exit(2);
    }
    // NOT_RUNNING reached during the hook's close: let the hook finish.
    TimeUnit.SECONDS.sleep(60);
  }

  /**
   * Cleanup after a run: the consumer group (= application.id); topics are the runner's job. A
   * stopped Kafka Streams member stays in the group until its session times out (Streams does not
   * send LeaveGroup on close for dynamic members), so the members are removed first.
   */
  private static void deleteGroup(String bootstrap, String appId) throws InterruptedException {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    try (Admin admin = Admin.create(p)) {
      try {
        admin.deleteConsumerGroups(List.of(appId)).all().get(30, TimeUnit.SECONDS);
      } catch (ExecutionException e) {
        if (!(e.getCause() instanceof GroupNotEmptyException)) throw e;
        admin.removeMembersFromConsumerGroup(appId, new RemoveMembersFromConsumerGroupOptions()).all().get(30, TimeUnit.SECONDS);
        admin.deleteConsumerGroups(List.of(appId)).all().get(30, TimeUnit.SECONDS);
      }
      line("{\"type\":\"group_deleted\",\"group\":" + quote(appId) + "}");
    } catch (ExecutionException | TimeoutException e) {
      line("{\"type\":\"error\",\"message\":" + quote("could not delete group " + appId + ": " + (e.getCause() != null ? e.getCause() : e)) + "}");
      System.exit(1);
    }
  }

  static Topology buildTopology(String input, String output, String dlq, CountProcessor.Settings settings) {
    Topology t = new Topology();
    t.addSource("impressions", new ByteArrayDeserializer(), new ByteArrayDeserializer(), input);
    t.addProcessor("count", () -> new CountProcessor(settings), "impressions");
    t.addStateStore(Stores.windowStoreBuilder(
            Stores.persistentWindowStore(CountProcessor.DEDUP_STORE, Duration.ofMillis(settings.dedupRetentionMs()), Duration.ofMillis(settings.windowMs), false),
            Serdes.String(), Serdes.ByteArray())
        .withCachingDisabled()
        .withLoggingEnabled(Map.of()), "count");
    t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(CountProcessor.COUNTS_STORE), Serdes.String(), Serdes.ByteArray())
        .withCachingEnabled()
        .withLoggingEnabled(Map.of()), "count");
    // Rows go to the partition they were counted on (the key ends in |partition), like tally's
    // impression-counts[p]; the output topic has as many partitions as the input.
    StreamPartitioner<byte[], byte[]> sourcePartition = (topic, key, value, numPartitions) -> {
      for (int i = key.length - 1; i >= 0; i--) {
        if (key[i] == '|') return Optional.of(Set.of(Integer.parseInt(new String(key, i + 1, key.length - i - 1, java.nio.charset.StandardCharsets.US_ASCII)) % numPartitions));
      }
      return Optional.empty();
    };
    t.addSink(CountProcessor.COUNTS_SINK, output, new ByteArraySerializer(), new ByteArraySerializer(), sourcePartition, "count");
    t.addSink(CountProcessor.DLQ_SINK, dlq, new ByteArraySerializer(), new ByteArraySerializer(), "count");
    return t;
  }

  private static void summaryLine(KafkaStreams streams, long started, boolean last) {
    line("{\"type\":\"summary\",\"final\":" + last + ",\"state\":\"" + streams.state() + "\",\"elapsed_ms\":" + (System.currentTimeMillis() - started)
        + ",\"records\":" + Stats.records.sum() + ",\"counted\":" + Stats.counted.sum() + ",\"duplicates\":" + Stats.duplicates.sum()
        + ",\"dead_letters\":" + Stats.deadLetters.sum() + ",\"rows_emitted\":" + Stats.rowsEmitted.sum() + ",\"emits\":" + Stats.emits.sum()
        + ",\"dirty_rows\":" + Stats.dirtyTotal() + ",\"tasks\":" + Stats.dirtyRows.size()
        + ",\"heap_used_mb\":" + (Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()) / 1048576 + "}");
  }

  private static synchronized void line(String json) {
    System.out.println(json);
    System.out.flush();
  }

  private static String quote(String s) {
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }

  private static Map<String, String> parseArgs(String[] argv) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String a = argv[i];
      if (a.equals("--help") || a.equals("-h")) {
        out.put("help", "");
        continue;
      }
      if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a + "\n" + USAGE);
      int eq = a.indexOf('=');
      if (eq > 0) {
        out.put(a.substring(2, eq), a.substring(eq + 1));
      } else {
        if (i + 1 >= argv.length) throw new IllegalArgumentException(a + " needs a value\n" + USAGE);
        out.put(a.substring(2), argv[++i]);
      }
    }
    for (String k : out.keySet()) {
      if (!List.of("help", "bootstrap", "application-id", "input", "output", "dlq", "threads", "state-dir", "window-ms", "out-of-orderness-ms",
          "allowed-lateness-ms", "dedup-horizon-ms", "max-clock-skew-ms", "commit-interval-ms", "summary-ms", "log-level", "delete-group").contains(k)) {
        throw new IllegalArgumentException("unknown option --" + k + "\n" + USAGE);
      }
    }
    return out;
  }

  private static String required(Map<String, String> args, String name) {
    String v = args.get(name);
    if (v == null || v.isEmpty()) throw new IllegalArgumentException("--" + name + " is required\n" + USAGE);
    return v;
  }

  private static long longArg(Map<String, String> args, String name, long def) {
    String v = args.get(name);
    return v == null ? def : Long.parseLong(v);
  }
}
