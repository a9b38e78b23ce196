export { fetchMetadata } from './metadata.js';
export { ensureTopics, deleteTopics, topicSpecs } from './topics.js';
export { DeliveringProducer, type OutgoingRecord } from './delivering-producer.js';
