package dev.tally.bench.flink;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * Process-wide counters for the summary lines (the mini-cluster runs every subtask in this JVM).
 * Not transactional: records replayed after a failure would count twice here. The exact figures
 * are the rows on the output topic (read_committed); these are the job's own view, to cross-check.
 */
final class Stats {
  static final LongAdder records = new LongAdder();
  static final LongAdder deadLetters = new LongAdder();
  static final LongAdder counted = new LongAdder();
  static final LongAdder duplicates = new LongAdder();
  static final LongAdder rowsEmitted = new LongAdder();
  /** The highest checkpoint id a dedup subtask heard completed (its sink transactions committed with it). */
  static final AtomicLong lastCheckpoint = new AtomicLong();

  private Stats() {}
}
