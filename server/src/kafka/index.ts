/**
 * tally's Kafka layer: every part talks to Kafka through these (errors/ classifies what fails).
 */
export { fetchMetadata } from './metadata.js';
export { ensureTopics, deleteTopics, topicSpecs } from './topics.js';
export { DeliveringProducer, type OutgoingRecord } from './delivering-producer.js';
export { Consumer, OFFSET_BEGINNING, type ConsumerSettings } from './consumer.js';
export { RebalanceQueue, rebalanceProtocolOf, type RebalanceEvent, type RebalanceProtocol } from './rebalance-queue.js';
export { EndTracker, type PartitionEnd } from './end-tracker.js';
export { readToEnd, type ReadRange, type ReadToEndOptions, type ReadToEndResult } from './read-to-end.js';
export { retry, sleep, type RetryOptions } from './retry.js';
export { TransactionalProducer, type TransactionalClient, type TransactionalProducerSettings } from './transactional-producer.js';
export { GROUP_MEMBER_TIMING } from './group-timing.js';
