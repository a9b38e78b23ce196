/**
 * POST /api/v1/impressions: a JSON array of events (application/json) or NDJSON
 * (application/x-ndjson), at most 10 000 events and 5 MB. Every event is validated with
 * parseImpression, the aggregator's own check, on exactly the bytes that go to Kafka (plus the
 * clock-skew check, future_timestamp); the valid
 * ones are produced (key impression_id, partition by the Java-compatible murmur2 partitioner,
 * value the event's original JSON text) and the answer 202 comes only after the broker
 * acknowledged all of them. A client that retries after a timeout or a 503 may create duplicates
 * in Kafka: the aggregator removes them.
 *
 * Every answer of the handler carries `Server-Timing: body;dur=…, validate;dur=…, kafka;dur=…`
 * (milliseconds: reading the body, splitting and validating, producing until the last broker
 * acknowledgement), so a client or a load test can tell the server's own time from queueing.
 */
import { isUtf8 } from 'node:buffer';
import express, { type Request, type RequestHandler, type Response } from 'express';
import type { ApiMetrics } from '../api/api-metrics.js';
import type { IngestResponse } from '../api/api-types.js';
import { ApiError, badRequest, errorBody, reply, unavailable } from '../api/http-errors.js';
import type { TallyConfig } from '../config/index.js';
import { parseImpression } from '../impression/index.js';
import type { OutgoingRecord } from '../kafka/index.js';
import type { Logger } from '../observability/index.js';
import { MAX_BODY_BYTES, MAX_EVENTS, splitJsonArray, splitNdjson } from './body.js';
import { KafkaUnavailableError, type EventSink } from './ingest-producer.js';

export const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/jsonlines'];
const JSON_TYPES = ['application/json', '+json'];

export interface IngestDeps {
  config: TallyConfig;
  log: Logger;
  sink: EventSink;
  metrics: ApiMetrics;
  now?: () => number;
}

export interface IngestOutcome {
  records: OutgoingRecord[];
  response: IngestResponse;
}

/**
 * Validates the split events; pure apart from building Buffers. Besides the contract checks, an
 * event time more than maxClockSkewMs ahead of `now` is refused as future_timestamp here, as the
 * aggregator would (it would only end up on the DLQ); too_late needs the watermark and stays the
 * aggregator's call.
 */
export function validateEvents(topic: string, events: string[], clock: { now: number; maxClockSkewMs: number }): IngestOutcome {
  const records: OutgoingRecord[] = [];
  const errors: IngestResponse['errors'] = [];
  const latest = clock.now + clock.maxClockSkewMs;
  events.forEach((text, index) => {
    const value = Buffer.from(text, 'utf8');
    const r = parseImpression(value);
    if (!r.ok) errors.push({ index, reason: r.reason, message: r.detail });
    else if (r.impression.ts > latest) {
      errors.push({ index, reason: 'future_timestamp', message: `ts is ${r.impression.ts - clock.now} ms ahead of the server clock; at most ${clock.maxClockSkewMs} ms allowed` });
    } else records.push({ topic, partition: null, key: r.impression.impressionId, value });
  });
  return { records, response: { accepted: records.length, rejected: errors.length, errors } };
}

/** Phases of one ingest request (Server-Timing), measured from the first ingest handler on. */
class IngestTiming {
  private last = performance.now();
  private readonly phases: string[] = [];

  mark(name: string): void {
    const now = performance.now();
    this.phases.push(`${name};dur=${(now - this.last).toFixed(1)}`);
    this.last = now;
  }

  setHeader(res: Response): void {
    if (!res.headersSent) res.setHeader('Server-Timing', this.phases.join(', '));
  }
}

/** Started by the first ingest handler (checkType), read by the last. */
const timings = new WeakMap<Response, IngestTiming>();

/** The body parser (raw bytes, 5 MB) and the handler; authentication, scope and rate limit come before. */
export function ingestHandlers(deps: IngestDeps): RequestHandler[] {
  const rawBody = express.raw({ type: () => true, limit: MAX_BODY_BYTES });

  const checkType: RequestHandler = (req, res, next) => {
    timings.set(res, new IngestTiming());
    const type = req.is([...JSON_TYPES, ...NDJSON_TYPES]);
    if (type === null || req.headers['content-length'] === '0') return next(badRequest('the request has no body; send a JSON array of events or NDJSON'));
    if (type === false) {
      return next(new ApiError(415, 'content-type must be application/json (an array of events) or application/x-ndjson (one event per line)'));
    }
    next();
  };

  const handle = async (req: Request, res: Response): Promise<void> => {
    const timing = timings.get(res) ?? new IngestTiming();
    timing.mark('body');
    const body: unknown = req.body;
    if (!Buffer.isBuffer(body) || body.length === 0) throw badRequest('the request body is empty');
    if (!isUtf8(body)) throw badRequest('the request body is not valid UTF-8');
    const text = body.toString('utf8');
    const ndjson = req.is(NDJSON_TYPES) !== false;
    const split = ndjson ? splitNdjson(text, MAX_EVENTS) : splitJsonArray(text, MAX_EVENTS);
    if (!split.ok) throw new ApiError(split.status, split.message);

    const { records, response } = validateEvents(deps.config.topics.impressions, split.events, {
      now: (deps.now ?? Date.now)(), maxClockSkewMs: deps.config.maxClockSkewMs,
    });
    for (const e of response.errors) deps.metrics.eventsRejected.inc({ reason: e.reason });
    timing.mark('validate');
    if (records.length === 0) {
      timing.setHeader(res);
      // The error shape plus the per-event reasons, so a client sees why each one was refused.
      reply(res, 400, { ...errorBody(400, 'no valid events in the request; see errors[] for each one'), ...response });
      return;
    }
    const t0 = process.hrtime.bigint();
    try {
      await deps.sink.send(records);
    } catch (err) {
      deps.metrics.produceFailures.inc();
      timing.mark('kafka');
      timing.setHeader(res);
      if (err instanceof KafkaUnavailableError) {
        deps.log.warn({ err: err.message, events: records.length }, 'ingest.kafka_unavailable');
        throw unavailable('Kafka did not acknowledge the events in time; retry the whole request (duplicates are removed downstream)', 5);
      }
      throw err;
    }
    deps.metrics.ackSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    deps.metrics.eventsAccepted.inc(records.length);
    timing.mark('kafka');
    timing.setHeader(res);
    reply(res, 202, response);
  };

  return [checkType, rawBody, handle];
}
