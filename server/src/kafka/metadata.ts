import Kafka from 'node-rdkafka';
import { kafkaError } from '../errors/index.js';

/** Asks the cluster for its metadata: the cheapest proof that a broker answers. */
export async function fetchMetadata(brokers: string, timeoutMs: number, topic?: string): Promise<Kafka.Metadata> {
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'socket.timeout.ms': timeoutMs, log_level: 0 });
  try {
    await new Promise<void>((resolve, reject) => producer.connect({ timeout: timeoutMs }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
    return await new Promise<Kafka.Metadata>((resolve, reject) => producer.getMetadata({ topic, timeout: timeoutMs }, (err, md) =>
      (err ? reject(kafkaError('metadata', err)) : resolve(md))));
  } finally {
    if (producer.isConnected()) producer.disconnect(() => undefined);
  }
}
