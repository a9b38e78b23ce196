import Kafka from 'node-rdkafka';

/** Asks the cluster for its metadata: the cheapest proof that a broker answers. */
export function fetchMetadata(brokers: string, timeoutMs: number, topic?: string): Promise<Kafka.Metadata> {
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'socket.timeout.ms': timeoutMs, log_level: 0 });
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err: unknown, md?: Kafka.Metadata) => {
      if (settled) return;
      settled = true;
      if (producer.isConnected()) producer.disconnect(() => undefined);
      if (err) reject(err);
      else resolve(md as Kafka.Metadata);
    };
    producer.connect({ timeout: timeoutMs }, (err) => {
      if (err) return done(err);
      producer.getMetadata({ topic, timeout: timeoutMs }, (e, md) => done(e, md));
    });
  });
}
