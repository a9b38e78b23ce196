package dev.tally.bench.flink;

import dev.tally.bench.shared.Cli;
import dev.tally.bench.shared.ConsumerGroups;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.sink.TransactionNamingStrategy;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;

/**
 * Entry point of the Flink peer: builds the job, runs it in a local mini-cluster inside this JVM
 * and prints one JSON line per event on stdout (the bench runner reads them): {"type":"config",…}
 * at start, {"type":"status",…} when the job's status changes, {"type":"summary",…} every
 * --summary-ms and once more at exit. Flink's and Kafka's own log (WARN and up) goes to stderr.
 *
 * The job (parallelism --parallelism; each arrow with "by" is a hash shuffle):
 *   KafkaSource(input, read_committed, per-partition watermarks: max event time − out-of-orderness)
 *     → by impression id → Dedup (ValueState with TTL)
 *     → by advertiser|campaign → tumbling event-time window (EmitEveryInterval trigger, counts + spend + duplicates)
 *     → KafkaSink(output, EXACTLY_ONCE: one transaction per subtask and checkpoint, committed when the checkpoint completes)
 * Source offsets are committed to the consumer group --group when a checkpoint completes.
 */
public final class Main {
  private static final String USAGE = String.join("\n",
      "usage: java -jar tally-flink-peer.jar --bootstrap HOST:PORT --group ID --input TOPIC --output TOPIC --work-dir DIR [options]",
      "  --work-dir DIR               checkpoints, RocksDB's files and Flink's temp files go under it",
      "  --parallelism N             every operator's parallelism = task slots of the mini-cluster (default 2)",
      "  --checkpoint-interval-ms N  checkpoint (= sink transaction, offset commit) interval (default 1000)",
      "  --emit-interval-ms N        changed rows are emitted every N ms (default: the checkpoint interval)",
      "  --state-backend NAME        rocksdb (incremental checkpoints) or hashmap (default rocksdb)",
      "  --transactional-id-prefix P default: the group id",
      "  --window-ms N               tumbling window (default 60000, TALLY_WINDOW_MS)",
      "  --out-of-orderness-ms N     default 5000 (TALLY_OUT_OF_ORDERNESS_MS)",
      "  --allowed-lateness-ms N     default 30000 (TALLY_ALLOWED_LATENESS_MS)",
      "  --dedup-horizon-ms N        default 3600000 (TALLY_DEDUP_HORIZON_MS)",
      "  --max-clock-skew-ms N       default 300000 (TALLY_MAX_CLOCK_SKEW_MS)",
      "  --summary-ms N              summary line interval (default 1000)",
      "  --log-level LEVEL           Flink's and Kafka's log level on stderr (default warn)",
      "or:    java -jar tally-flink-peer.jar --bootstrap HOST:PORT --group ID --delete-group true",
      "  deletes the consumer group of a stopped run");
  private static final List<String> OPTIONS = List.of("bootstrap", "group", "input", "output", "work-dir", "parallelism",
      "checkpoint-interval-ms", "emit-interval-ms", "state-backend", "transactional-id-prefix", "window-ms", "out-of-orderness-ms",
      "allowed-lateness-ms", "dedup-horizon-ms", "max-clock-skew-ms", "summary-ms", "log-level", "delete-group");

  private Main() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = Cli.parse(argv, OPTIONS, USAGE);
    if (args.containsKey("help")) {
      System.out.println(USAGE);
      return;
    }
    Cli.logToStderr(args.getOrDefault("log-level", "warn"));
    // Two operators of the sink register metrics of the same name: a warning per subtask and checkpoint, harmless.
    System.setProperty("org.slf4j.simpleLogger.log.org.apache.flink.metrics.MetricGroup", "error");
    String bootstrap = Cli.required(args, "bootstrap", USAGE);
    String group = Cli.required(args, "group", USAGE);
    if (args.containsKey("delete-group")) {
      ConsumerGroups.delete(bootstrap, group);
      return;
    }
    String input = Cli.required(args, "input", USAGE);
    String output = Cli.required(args, "output", USAGE);
    String workDir = Cli.required(args, "work-dir", USAGE);
    int parallelism = (int) Cli.longArg(args, "parallelism", 2);
    long checkpointMs = Cli.longArg(args, "checkpoint-interval-ms", 1000);
    long emitMs = Cli.longArg(args, "emit-interval-ms", checkpointMs);
    String backend = args.getOrDefault("state-backend", "rocksdb");
    if (!backend.equals("rocksdb") && !backend.equals("hashmap")) throw new IllegalArgumentException("--state-backend: rocksdb or hashmap\n" + USAGE);
    long windowMs = Cli.longArg(args, "window-ms", 60_000);
    long outOfOrdernessMs = Cli.longArg(args, "out-of-orderness-ms", 5_000);
    long allowedLatenessMs = Cli.longArg(args, "allowed-lateness-ms", 30_000);
    long dedupHorizonMs = Cli.longArg(args, "dedup-horizon-ms", 3_600_000);
    long maxClockSkewMs = Cli.longArg(args, "max-clock-skew-ms", 300_000);
    long summaryMs = Cli.longArg(args, "summary-ms", 1000);

    Configuration conf = Configuration.fromMap(Map.ofEntries(
        Map.entry("execution.checkpointing.interval", checkpointMs + " ms"),
        Map.entry("execution.checkpointing.mode", "EXACTLY_ONCE"),
        Map.entry("execution.checkpointing.dir", "file://" + workDir + "/checkpoints"),
        Map.entry("state.backend.rocksdb.localdir", workDir + "/rocksdb"),
        Map.entry("io.tmp.dirs", workDir + "/tmp"),
        Map.entry("execution.checkpointing.incremental", "true"),
        Map.entry("state.backend.type", backend),
        // Timers (a few per row and window) on the heap even with RocksDB: there are few of them.
        Map.entry("state.backend.rocksdb.timer-service.factory", "HEAP"),
        // A failure ends the run (the runner reports it) instead of restarting from the last checkpoint.
        Map.entry("restart-strategy.type", "none"),
        Map.entry("pipeline.object-reuse", "true")));
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(parallelism, conf);

    KafkaSource<Impression> source = KafkaSource.<Impression>builder()
        .setBootstrapServers(bootstrap)
        .setTopics(input)
        .setGroupId(group)
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setDeserializer(new ImpressionDeserializer(maxClockSkewMs))
        .setProperty("isolation.level", "read_committed")
        .setProperty("commit.offsets.on.checkpoint", "true")
        .build();
    KafkaSink<WindowRow> sink = KafkaSink.<WindowRow>builder()
        .setBootstrapServers(bootstrap)
        .setRecordSerializer(WindowRow.serializer(output))
        .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .setTransactionalIdPrefix(args.getOrDefault("transactional-id-prefix", group))
        // Reuses a small pool of transactional ids instead of a new one per checkpoint.
        .setTransactionNamingStrategy(TransactionNamingStrategy.POOLING)
        // Above the checkpoint interval, below the broker's maximum (15 min): bounds how long a
        // killed run holds back read_committed readers of the output.
        .setProperty("transaction.timeout.ms", "60000")
        .build();

    long dedupTtlMs = windowMs + allowedLatenessMs + dedupHorizonMs + outOfOrdernessMs;
    env.fromSource(source, WatermarkStrategy.<Impression>forBoundedOutOfOrderness(Duration.ofMillis(outOfOrdernessMs))
            .withTimestampAssigner((imp, kafkaTs) -> imp.ts), "impressions")
        .keyBy(imp -> imp.impressionId)
        .process(new Dedup(dedupTtlMs)).name("dedup")
        .keyBy(imp -> imp.row)
        .window(TumblingEventTimeWindows.of(Duration.ofMillis(windowMs)))
        // tally counts a late event (as a revision of its row) until its window's dedup horizon
        // has passed, not only within allowed lateness; so the window state lives that long.
        .allowedLateness(Duration.ofMillis(allowedLatenessMs + dedupHorizonMs))
        .trigger(new EmitEveryInterval(emitMs, allowedLatenessMs))
        .aggregate(new WindowCount.Sum(), new WindowCount.ToRow(allowedLatenessMs)).name("count")
        .sinkTo(sink).name("counts");

    long started = System.currentTimeMillis();
    Cli.line("{\"type\":\"config\",\"group\":" + Cli.quote(group) + ",\"parallelism\":" + parallelism + ",\"checkpoint_interval_ms\":" + checkpointMs
        + ",\"emit_interval_ms\":" + emitMs + ",\"state_backend\":" + Cli.quote(backend) + ",\"dedup_ttl_ms\":" + dedupTtlMs + "}");
    JobClient job = env.executeAsync("tally-flink-peer");

    Thread summary = new Thread(() -> {
      String status = "";
      try {
        while (!Thread.currentThread().isInterrupted()) {
          String now = String.valueOf(job.getJobStatus().get(10, TimeUnit.SECONDS));
          if (!now.equals(status)) {
            status = now;
            Cli.line("{\"type\":\"status\",\"status\":\"" + now + "\",\"elapsed_ms\":" + (System.currentTimeMillis() - started) + "}");
          }
          summaryLine(started, false);
          Thread.sleep(summaryMs);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } catch (Exception e) {
        Cli.line("{\"type\":\"error\",\"message\":" + Cli.quote("job status: " + e) + "}");
      }
    }, "summary");
    summary.setDaemon(true);
    summary.start();

    AtomicBoolean stopping = new AtomicBoolean();
    Thread hook = new Thread(() -> {
      stopping.set(true);
      summary.interrupt();
      // Cancelling aborts the open transactions; what earlier checkpoints committed stays.
      try {
        job.cancel().get(30, TimeUnit.SECONDS);
      } catch (Exception e) {
        Cli.line("{\"type\":\"error\",\"message\":" + Cli.quote("cancel: " + e) + "}");
      }
      summaryLine(started, true);
    }, "shutdown");
    Runtime.getRuntime().addShutdownHook(hook);

    try {
      job.getJobExecutionResult().get();
    } catch (Exception e) {
      if (stopping.get()) return; // cancelled by the hook, which owns the exit
      Cli.line("{\"type\":\"error\",\"message\":" + Cli.quote(String.valueOf(e.getCause() != null ? e.getCause() : e)) + "}");
      e.printStackTrace();
      Runtime.getRuntime().halt(2);
    }
  }

  private static void summaryLine(long started, boolean last) {
    Cli.line("{\"type\":\"summary\",\"final\":" + last + ",\"elapsed_ms\":" + (System.currentTimeMillis() - started)
        + ",\"records\":" + Stats.records.sum() + ",\"counted\":" + Stats.counted.sum() + ",\"duplicates\":" + Stats.duplicates.sum()
        + ",\"dead_letters\":" + Stats.deadLetters.sum() + ",\"rows_emitted\":" + Stats.rowsEmitted.sum()
        + ",\"last_checkpoint\":" + Stats.lastCheckpoint.get()
        + ",\"heap_used_mb\":" + (Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()) / 1048576 + "}");
  }
}
