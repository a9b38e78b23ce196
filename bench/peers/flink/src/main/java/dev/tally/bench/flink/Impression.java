package dev.tally.bench.flink;

/**
 * A valid impression between the operators (a Flink POJO: public fields, no-arg constructor, so
 * Flink's own serializer carries it across the two shuffles). The dedup step fills {@code row} and
 * {@code duplicate} and drops the id, so the second shuffle carries no more than the count needs.
 */
public class Impression {
  public String impressionId;
  public long ts;
  public String advertiserId;
  public String campaignId;
  public long costMicros;
  /** Set by {@link Dedup}: the row key {@code advertiser|campaign} the window counts under. */
  public String row;
  /** Set by {@link Dedup}: a later copy of an id already counted in this window. */
  public boolean duplicate;

  public Impression() {}
}
