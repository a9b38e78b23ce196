package dev.tally.bench.kstreams;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import dev.tally.bench.shared.Cli;
import dev.tally.bench.shared.ConsumerGroups;
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

  private static final List<String> OPTIONS = List.of("bootstrap", "application-id", "input", "output", "dlq", "threads", "state-dir", "window-ms",
      "out-of-orderness-ms", "allowed-lateness-ms", "dedup-horizon-ms", "max-clock-skew-ms", "commit-interval-ms", "summary-ms", "log-level", "delete-group");

  private Main() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = Cli.parse(argv, OPTIONS, USAGE);
    if (args.containsKey("help")) {
      System.out.println(USAGE);
      return;
    }
    // Before the first logger exists.
    Cli.logToStderr(args.getOrDefault("log-level", "warn"));

    String bootstrap = Cli.required(args, "bootstrap", USAGE);
    String appId = Cli.required(args, "application-id", USAGE);
    if (args.containsKey("delete-group")) {
      ConsumerGroups.delete(bootstrap, appId);
      return;
    }
    String input = Cli.required(args, "input", USAGE);
    String output = Cli.required(args, "output", USAGE);
    String dlq = Cli.required(args, "dlq", USAGE);
    int threads = Integer.parseInt(args.getOrDefault("threads", "1"));
    long summaryMs = Long.parseLong(args.getOrDefault("summary-ms", "1000"));

    CountProcessor.Settings settings = new CountProcessor.Settings();
    settings.windowMs = Cli.longArg(args, "window-ms", settings.windowMs);
    settings.outOfOrdernessMs = Cli.longArg(args, "out-of-orderness-ms", settings.outOfOrdernessMs);
    settings.allowedLatenessMs = Cli.longArg(args, "allowed-lateness-ms", settings.allowedLatenessMs);
    settings.dedupHorizonMs = Cli.longArg(args, "dedup-horizon-ms", settings.dedupHorizonMs);
    settings.maxClockSkewMs = Cli.longArg(args, "max-clock-skew-ms", settings.maxClockSkewMs);
    settings.commitIntervalMs = Cli.longArg(args, "commit-interval-ms", settings.commitIntervalMs);

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
      Cli.line("{\"type\":\"state\",\"from\":\"" + from + "\",\"to\":\"" + to + "\",\"elapsed_ms\":" + (System.currentTimeMillis() - started) + "}");
      if (to == KafkaStreams.State.ERROR || to == KafkaStreams.State.NOT_RUNNING) stopped.countDown();
    });
    streams.setUncaughtExceptionHandler(e -> {
      Cli.line("{\"type\":\"error\",\"message\":" + Cli.quote(String.valueOf(e)) + "}");
      e.printStackTrace();
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });

    Cli.line("{\"type\":\"config\",\"application_id\":" + Cli.quote(appId) + ",\"threads\":" + threads
        + ",\"processing_guarantee\":\"exactly_once_v2\",\"settings\":" + Cli.quote(String.join(" ", settings.describe()))
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
      if (!closed) Cli.line("{\"type\":\"error\",\"message\":\"close timed out\"}");
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
    Cli.line("{\"type\":\"summary\",\"final\":" + last + ",\"state\":\"" + streams.state() + "\",\"elapsed_ms\":" + (System.currentTimeMillis() - started)
        + ",\"records\":" + Stats.records.sum() + ",\"counted\":" + Stats.counted.sum() + ",\"duplicates\":" + Stats.duplicates.sum()
        + ",\"dead_letters\":" + Stats.deadLetters.sum() + ",\"rows_emitted\":" + Stats.rowsEmitted.sum() + ",\"emits\":" + Stats.emits.sum()
        + ",\"dirty_rows\":" + Stats.dirtyTotal() + ",\"tasks\":" + Stats.dirtyRows.size()
        + ",\"heap_used_mb\":" + (Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()) / 1048576 + "}");
  }

}
