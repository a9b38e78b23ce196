// HTTP ingest: POST /api/v1/impressions → bounded body → split → validated → idempotent producer → impressions topic.
export {
  DEFAULT_MAX_JSON_DEPTH, MAX_BODY_BYTES, MAX_EVENTS, MAX_TOKEN_CHARS, JsonArraySplitter, NdjsonSplitter,
  splitJsonArray, splitNdjson, type BodySplitter, type SplitResult,
} from './body.js';
export { KafkaUnavailableError } from '../errors/index.js';
export { IngestProducer, type EventSink } from './ingest-producer.js';
export { ingestHandlers, NDJSON_TYPES, type IngestDeps } from './ingest-handler.js';
export type { IngestMetrics } from './ingest-metrics.js';
export { readBody, contentEncoding, type BodyLimits, type BodySource, type ContentEncoding } from './read-body.js';
export { EventValidator, validateEvents, type IngestClock, type IngestOutcome } from './validate-events.js';
