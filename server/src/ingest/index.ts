// HTTP ingest: POST /api/v1/impressions → validated → idempotent producer → impressions topic.
export { MAX_BODY_BYTES, MAX_EVENTS, splitJsonArray, splitNdjson, type SplitResult } from './body.js';
export { IngestProducer, KafkaUnavailableError, type EventSink } from './ingest-producer.js';
export { ingestHandlers, validateEvents, NDJSON_TYPES, type IngestDeps, type IngestOutcome } from './ingest-handler.js';
