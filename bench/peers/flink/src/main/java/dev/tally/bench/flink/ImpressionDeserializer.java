package dev.tally.bench.flink;

import dev.tally.bench.shared.ImpressionParser;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Parses each record in the source (so the watermark strategy can read event time per Kafka
 * partition, as tally's per-partition watermark does) with the parser the Kafka Streams peer uses.
 * Invalid records and events further than max clock skew ahead of the wall clock are dropped and
 * counted (tally dead-letters them; the bench input has none, so no DLQ sink is built).
 */
final class ImpressionDeserializer implements KafkaRecordDeserializationSchema<Impression> {
  private static final long serialVersionUID = 1L;

  private final long maxClockSkewMs;
  /** Not serializable (Jackson's factory): made on first use in each subtask. */
  private transient ImpressionParser parser;

  ImpressionDeserializer(long maxClockSkewMs) {
    this.maxClockSkewMs = maxClockSkewMs;
  }

  @Override
  public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Impression> out) {
    if (parser == null) parser = new ImpressionParser();
    Stats.records.increment();
    ImpressionParser.Result r = parser.parse(record.value());
    if (!r.ok() || r.ts > System.currentTimeMillis() + maxClockSkewMs) {
      Stats.deadLetters.increment();
      return;
    }
    Impression imp = new Impression();
    imp.impressionId = r.impressionId;
    imp.ts = r.ts;
    imp.advertiserId = r.advertiserId;
    imp.campaignId = r.campaignId;
    imp.costMicros = r.costMicros;
    out.collect(imp);
  }

  @Override
  public TypeInformation<Impression> getProducedType() {
    return TypeInformation.of(Impression.class);
  }
}
