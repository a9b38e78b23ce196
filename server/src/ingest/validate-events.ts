/**
 * Validation of the split events: parseImpression (the aggregator's own check) on exactly the
 * bytes that go to Kafka, the clock-skew check (future_timestamp), and the token's advertisers
 * (advertiser_not_allowed). Pure apart from building Buffers; resumable like the splitters, so the
 * handler validates 10 000 events in slices.
 */
import type { IngestResponse } from '../contracts/api-types.js';
import { parseImpression } from '../impression/index.js';
import type { OutgoingRecord } from '../kafka/index.js';

export interface IngestOutcome {
  records: OutgoingRecord[];
  response: IngestResponse;
}

export interface IngestClock {
  now: number;
  maxClockSkewMs: number;
}

/** What one event costs in a slice's budget besides its bytes (parse call, record). */
const EVENT_OVERHEAD_BYTES = 256;

/**
 * Validates events in order; `step(budget)` handles events until about `budget` bytes of them
 * (plus a fixed cost per event) have been read, and returns true once all are done. An event is
 * its exact bytes (a view of the body, which becomes the record value) or a string (encoded as
 * UTF-8). `allowedAdvertisers` null means any advertiser (an `ingest` or `admin` token).
 */
export class EventValidator {
  private next = 0;
  private readonly records: OutgoingRecord[] = [];
  private readonly errors: IngestResponse['errors'] = [];
  private readonly latest: number;
  private readonly allowed: ReadonlySet<string> | null;
  private readonly refused = new Set<string>();

  constructor(
    private readonly topic: string,
    private readonly events: ReadonlyArray<string | Buffer>,
    private readonly clock: IngestClock,
    allowedAdvertisers: readonly string[] | null = null,
  ) {
    this.latest = clock.now + clock.maxClockSkewMs;
    this.allowed = allowedAdvertisers === null ? null : new Set(allowedAdvertisers);
  }

  step(budget: number): boolean {
    let spent = 0;
    while (this.next < this.events.length && spent < budget) {
      const index = this.next++;
      const event = this.events[index];
      const value = typeof event === 'string' ? Buffer.from(event, 'utf8') : event;
      spent += value.length + EVENT_OVERHEAD_BYTES;
      this.validate(index, value);
    }
    return this.next >= this.events.length;
  }

  /** The advertisers of the events refused as advertiser_not_allowed, in order of first appearance. */
  refusedAdvertisers(): string[] {
    return [...this.refused];
  }

  outcome(): IngestOutcome {
    return { records: this.records, response: { accepted: this.records.length, rejected: this.errors.length, errors: this.errors } };
  }

  private validate(index: number, value: Buffer): void {
    const r = parseImpression(value);
    if (!r.ok) {
      this.errors.push({ index, reason: r.reason, message: r.detail });
      return;
    }
    const { advertiserId, impressionId, ts } = r.impression;
    if (this.allowed !== null && !this.allowed.has(advertiserId)) {
      this.refused.add(advertiserId);
      this.errors.push({ index, reason: 'advertiser_not_allowed', message: `this token may not ingest events of advertiser ${JSON.stringify(advertiserId)}` });
    } else if (ts > this.latest) {
      const { now, maxClockSkewMs } = this.clock;
      this.errors.push({ index, reason: 'future_timestamp', message: `ts is ${ts - now} ms ahead of the server clock; at most ${maxClockSkewMs} ms allowed` });
    } else {
      this.records.push({ topic: this.topic, partition: null, key: impressionId, value });
    }
  }
}

/**
 * Validates the split events in one go (the handler runs an EventValidator in slices). Besides
 * the contract checks, an event time more than maxClockSkewMs ahead of `now` is refused as
 * future_timestamp here, as the aggregator would (it would only end up on the DLQ); too_late
 * needs the watermark and stays the aggregator's call.
 */
export function validateEvents(
  topic: string, events: ReadonlyArray<string | Buffer>, clock: IngestClock, allowedAdvertisers: readonly string[] | null = null,
): IngestOutcome {
  const v = new EventValidator(topic, events, clock, allowedAdvertisers);
  v.step(Number.POSITIVE_INFINITY);
  return v.outcome();
}
