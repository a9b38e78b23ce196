package dev.tally.bench.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;

/** One output record: key {@code windowStart|advertiser|campaign}, value the row's JSON. */
public class WindowRow {
  public String key;
  public String json;

  public WindowRow() {}

  WindowRow(String key, String json) {
    this.key = key;
    this.json = json;
  }

  /**
   * To `topic`, partitioned by key (Kafka's default partitioner). Built with the connector's builder,
   * which names the topic to the sink (the POOLING transaction naming strategy needs to know it).
   */
  static KafkaRecordSerializationSchema<WindowRow> serializer(String topic) {
    return KafkaRecordSerializationSchema.<WindowRow>builder()
        .setTopic(topic)
        .setKeySerializationSchema(new Key())
        .setValueSerializationSchema(new Value())
        .build();
  }

  // Classes, not lambdas: the sink's lineage reads their type parameter.
  private static final class Key implements SerializationSchema<WindowRow> {
    private static final long serialVersionUID = 1L;

    @Override
    public byte[] serialize(WindowRow row) {
      return row.key.getBytes(StandardCharsets.UTF_8);
    }
  }

  private static final class Value implements SerializationSchema<WindowRow> {
    private static final long serialVersionUID = 1L;

    @Override
    public byte[] serialize(WindowRow row) {
      return row.json.getBytes(StandardCharsets.UTF_8);
    }
  }
}
