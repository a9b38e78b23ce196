import type Kafka from 'node-rdkafka';
import type { TallyConfig } from '../config/index.js';
import { TransactionalProducer, type TransactionalClient } from '../kafka/index.js';
import { AtLeastOnceWriter } from './at-least-once-writer.js';

/**
 * What one commit of the aggregator is, as Kafka Streams' processing.guarantee picks it; the same
 * TransactionOwner drives either:
 *   exactly_once  → one Kafka transaction holds the records and the input offsets;
 *   at_least_once → AtLeastOnceWriter: records acknowledged first, offsets committed after, so a
 *                   crash in between replays (and may count twice) what the offsets did not cover.
 * `description` is what the log says; `newClient` makes a producer (again, after one was fenced).
 */
export function processingGuarantee(config: TallyConfig, consumer: Kafka.KafkaConsumer): { description: string; newClient: () => TransactionalClient } {
  if (config.processingGuarantee === 'at_least_once') {
    return { description: 'at_least_once', newClient: () => new AtLeastOnceWriter(config.kafka.brokers, consumer) };
  }
  const transactionalId = `${config.groups.aggregator}-${config.instanceId}`;
  return {
    description: `exactly_once (transactional.id ${transactionalId})`,
    newClient: () => new TransactionalProducer({
      brokers: config.kafka.brokers,
      transactionalId,
      transactionTimeoutMs: config.transactionTimeoutMs,
      consumer,
      extra: {
        'linger.ms': 5,
        'batch.num.messages': 10_000,
        'queue.buffering.max.messages': 1_000_000,
        'queue.buffering.max.kbytes': 1_048_576,
        'message.max.bytes': 4_000_000,
      },
    }),
  };
}
