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
 *
 * No request holds the event loop for long, whatever it carries: the body is inflated by zlib
 * streams with size and ratio limits (readBody), never JSON.parse'd whole (a linear scan splits it,
 * bounding depth and token length), and the scan and the validation run in slices of about a
 * millisecond with a yield to the event loop between them.
 *
 * A token scoped `ingest:<advertiser id>` may ingest that advertiser's events only: any other is
 * refused per event (advertiser_not_allowed), and a request refused only for that gets a 403.
 */
import { isUtf8 } from 'node:buffer';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Request, RequestHandler, Response } from 'express';
import { ingestableAdvertisers } from '../auth/principal.js';
import type { TallyConfig } from '../config/index.js';
import { KafkaUnavailableError } from '../errors/index.js';
import { ApiError, badRequest, errorBody, principalOf, reply, unavailable } from '../http/index.js';
import type { Logger } from '../observability/index.js';
import { JsonArraySplitter, MAX_BODY_BYTES, MAX_EVENTS, NdjsonSplitter, type BodySplitter } from './body.js';
import type { IngestMetrics } from './ingest-metrics.js';
import type { EventSink } from './ingest-producer.js';
import { readBody } from './read-body.js';
import { EventValidator } from './validate-events.js';

export const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/jsonlines'];
const JSON_TYPES = ['application/json', '+json'];

export interface IngestDeps {
  config: TallyConfig;
  log: Logger;
  sink: EventSink;
  metrics: IngestMetrics;
  now?: () => number;
}

/**
 * Work between two yields to the event loop: steps run until SLICE_MS has passed. A step scans
 * SCAN_STEP_BYTES (elements and lines count extra) or validates VALIDATE_STEP_BYTES of events
 * (plus a fixed cost per event): ~0.1–0.2 ms once the JIT has compiled the loops, ~2 ms before
 * (the first requests after a start).
 */
const SLICE_MS = 1;
const SCAN_STEP_BYTES = 64 * 1024;
const VALIDATE_STEP_BYTES = 32 * 1024;

/** The client went away or the request timed out (already answered) while it was being worked on. */
function abandoned(req: Request, res: Response): boolean {
  return res.headersSent || req.socket.destroyed;
}

/**
 * Runs `step` until it returns a result, yielding to the event loop whenever SLICE_MS of steps
 * have run; stops when the request is abandoned meanwhile.
 */
async function inSlices<T>(req: Request, res: Response, step: () => T | undefined): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const r = step();
    if (r !== undefined) return r;
    if (performance.now() - sliceStart >= SLICE_MS) {
      await yieldToEventLoop();
      if (abandoned(req, res)) throw unavailable('the request was abandoned while it was being processed');
      sliceStart = performance.now();
    }
  }
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

/** The content-type check and the handler (which reads the body); authentication, scope and rate limit come before. */
export function ingestHandlers(deps: IngestDeps): RequestHandler[] {
  const limits = { maxBytes: MAX_BODY_BYTES, maxInflateRatio: deps.config.http.ingestMaxInflateRatio };
  const maxDepth = deps.config.http.ingestMaxJsonDepth;

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
    const body = await readBody(req, limits);
    timing.mark('body');
    if (abandoned(req, res)) throw unavailable('the request was abandoned while its body was read');
    if (body.length === 0) throw badRequest('the request body is empty');
    if (!isUtf8(body)) throw badRequest('the request body is not valid UTF-8');
    const ndjson = req.is(NDJSON_TYPES) !== false;
    const splitter: BodySplitter = ndjson ? new NdjsonSplitter(body, MAX_EVENTS) : new JsonArraySplitter(body, MAX_EVENTS, maxDepth);
    const split = await inSlices(req, res, () => splitter.step(SCAN_STEP_BYTES));
    if (!split.ok) throw new ApiError(split.status, split.message);

    const allowed = ingestableAdvertisers(principalOf(req));
    const validator = new EventValidator(deps.config.topics.impressions, split.events, {
      now: (deps.now ?? Date.now)(), maxClockSkewMs: deps.config.maxClockSkewMs,
    }, allowed);
    await inSlices(req, res, () => (validator.step(VALIDATE_STEP_BYTES) ? true : undefined));
    const { records, response } = validator.outcome();
    const rejected = new Map<string, number>();
    for (const e of response.errors) rejected.set(e.reason, (rejected.get(e.reason) ?? 0) + 1);
    for (const [reason, n] of rejected) deps.metrics.eventsRejected.inc({ reason }, n);
    timing.mark('validate');
    if (records.length === 0) {
      timing.setHeader(res);
      // The error shape plus the per-event reasons, so a client sees why each one was refused.
      const forbidden = response.errors.every((e) => e.reason === 'advertiser_not_allowed');
      const message = forbidden
        ? `this token may not ingest events of ${advertiserList(validator.refusedAdvertisers())}; it may ingest ${advertiserList(allowed ?? [])} only`
        : 'no valid events in the request; see errors[] for each one';
      const status = forbidden ? 403 : 400;
      reply(res, status, { ...errorBody(status, message), ...response });
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

  return [checkType, handle];
}

/** Advertiser ids for a message: the first three quoted, then how many more. */
function advertiserList(ids: readonly string[]): string {
  const shown = ids.slice(0, 3).map((id) => JSON.stringify(id)).join(', ');
  const more = ids.length > 3 ? ` and ${ids.length - 3} more` : '';
  return `advertiser${ids.length === 1 ? '' : 's'} ${shown}${more}`;
}
