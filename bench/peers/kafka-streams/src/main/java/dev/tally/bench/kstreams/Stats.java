package dev.tally.bench.kstreams;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Process-wide counters for the summary lines. Not transactional: a record processed in a
 * transaction that aborts and is processed again is counted twice here. The exact figures are the
 * rows on the output topic (read_committed); these are the app's own view, to cross-check them.
 */
final class Stats {
  static final LongAdder records = new LongAdder();
  static final LongAdder counted = new LongAdder();
  static final LongAdder duplicates = new LongAdder();
  static final LongAdder deadLetters = new LongAdder();
  static final LongAdder rowsEmitted = new LongAdder();
  static final LongAdder emits = new LongAdder();
  /** Rows changed but not yet forwarded, per task (updated by the stream thread). */
  static final Map<String, Integer> dirtyRows = new ConcurrentHashMap<>();

  private Stats() {}

  static long dirtyTotal() {
    long n = 0;
    for (int v : dirtyRows.values()) n += v;
    return n;
  }
}
