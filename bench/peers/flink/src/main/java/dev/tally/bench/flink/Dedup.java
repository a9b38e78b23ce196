package dev.tally.bench.flink;

import java.time.Duration;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * Dedup keyed by impression id, as tally's DedupIndex: an id seen before is a duplicate, whatever
 * window a later copy is stamped in. Every record goes on to the window count, marked new or
 * duplicate, because tally counts duplicates per row as well.
 *
 * Expiry: Flink's state TTL runs on processing time only (no event-time TTL), so an id lives
 * window + allowed lateness + dedup horizon + out-of-orderness after it was written, the span for
 * which tally keeps it by event time. On a live stream (event time ≈ wall clock) that is the same
 * horizon; on a replay of old data it is longer. Expired ids are dropped in RocksDB's compaction.
 */
final class Dedup extends KeyedProcessFunction<String, Impression, Impression> implements CheckpointListener {
  private static final long serialVersionUID = 1L;

  private final long ttlMs;
  private transient ValueState<Boolean> seen;

  Dedup(long ttlMs) {
    this.ttlMs = ttlMs;
  }

  @Override
  public void open(OpenContext ctx) {
    ValueStateDescriptor<Boolean> d = new ValueStateDescriptor<>("seen", Boolean.class);
    d.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(ttlMs))
        .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
        .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
        .cleanupInRocksdbCompactFilter(1000)
        .build());
    seen = getRuntimeContext().getState(d);
  }

  @Override
  public void processElement(Impression imp, Context ctx, Collector<Impression> out) throws Exception {
    imp.duplicate = seen.value() != null;
    if (imp.duplicate) {
      Stats.duplicates.increment();
    } else {
      seen.update(Boolean.TRUE);
      Stats.counted.increment();
    }
    imp.row = imp.advertiserId + "|" + imp.campaignId;
    imp.impressionId = null;
    imp.advertiserId = null;
    imp.campaignId = null;
    out.collect(imp);
  }

  @Override
  public void notifyCheckpointComplete(long checkpointId) {
    Stats.lastCheckpoint.accumulateAndGet(checkpointId, Math::max);
  }
}
