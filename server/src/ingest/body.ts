/**
 * Splits an ingest request body into the events' own JSON texts, byte for byte as the client sent
 * them: each event's text is what gets validated (parseImpression, the aggregator's own check)
 * and what goes to Kafka as the record value, so an event accepted here is never refused later
 * for its shape. Pure; unit-tested.
 */

/** Most events in one request. */
export const MAX_EVENTS = 10_000;
/** Largest request body (after content decoding). */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;

export type SplitResult =
  | { ok: true; events: string[] }
  | { ok: false; status: 400 | 413; message: string };

const tooMany = (n: number, max: number): SplitResult => ({
  ok: false, status: 413, message: `${n} events in one request; at most ${max}, split the batch`,
});

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

function trimJson(s: string, start: number, end: number): string {
  while (start < end && isJsonSpace(s.charCodeAt(start))) start++;
  while (end > start && isJsonSpace(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

/**
 * A JSON array of events → the text of each element. The body must be valid JSON and an array;
 * the elements may be anything (a non-object element is refused per event as not_object).
 */
export function splitJsonArray(text: string, maxEvents = MAX_EVENTS): SplitResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ok: false, status: 400, message: 'body is not valid JSON; send a JSON array of events, or NDJSON with content-type application/x-ndjson' };
  }
  if (!Array.isArray(doc)) {
    return { ok: false, status: 400, message: 'body must be a JSON array of events (or NDJSON with content-type application/x-ndjson)' };
  }
  if (doc.length === 0) return { ok: false, status: 400, message: 'the array holds no events' };
  if (doc.length > maxEvents) return tooMany(doc.length, maxEvents);

  // The text is valid JSON (parsed above), so a scan that tracks strings and nesting finds the
  // top-level commas exactly.
  const events: string[] = [];
  let i = text.indexOf('[') + 1;
  let start = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x7d) depth--;
    else if (c === 0x5d) {
      if (depth === 0) {
        events.push(trimJson(text, start, i));
        break;
      }
      depth--;
    } else if (c === 0x2c && depth === 0) {
      events.push(trimJson(text, start, i));
      start = i + 1;
    }
  }
  if (events.length !== doc.length) {
    // Cannot happen for valid JSON; re-serializing keeps the request correct if it ever did.
    return { ok: true, events: doc.map((e) => JSON.stringify(e) ?? 'null') };
  }
  return { ok: true, events };
}

/**
 * NDJSON: one event per line (LF or CRLF); blank lines are skipped and not counted, so an
 * event's index is its position among the non-blank lines.
 */
export function splitNdjson(text: string, maxEvents = MAX_EVENTS): SplitResult {
  const events: string[] = [];
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = trimJson(text, start, end);
    if (line !== '') {
      if (events.length === maxEvents) return tooMany(countLines(text), maxEvents);
      events.push(line);
    }
    start = end + 1;
  }
  if (events.length === 0) return { ok: false, status: 400, message: 'the body holds no events' };
  return { ok: true, events };
}

function countLines(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) if (trimJson(line, 0, line.length) !== '') n++;
  return n;
}
