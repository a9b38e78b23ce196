/**
 * Splits an ingest request body into the events' own JSON texts, byte for byte as the client sent
 * them: each event's bytes are what gets validated (parseImpression, the aggregator's own check)
 * and what goes to Kafka as the record value, so an event accepted here is never refused later
 * for its shape.
 *
 * The body is never parsed as a whole: one linear scan over its bytes finds the top-level elements
 * (tracking strings, escapes and brackets) and refuses what would make a parser slow: nesting
 * deeper than maxDepth, a number or literal longer than MAX_TOKEN_CHARS. Whether each element is
 * valid JSON is decided per event by parseImpression, on at most MAX_EVENT_BYTES. Every byte that
 * matters here is ASCII and UTF-8 never uses ASCII bytes inside a multi-byte character, so a byte
 * scan finds exactly what a character scan would, without decoding the body to a string.
 *
 * The splitters are pure and resumable: `step(budget)` scans about `budget` more bytes (an element
 * or a line counts extra), so the HTTP handler runs a 5 MB body in slices and yields to the event
 * loop between them. splitJsonArray and splitNdjson are the same scans on a string, in one go.
 */

/** Most events in one request. */
export const MAX_EVENTS = 10_000;
/** Largest request body (after content decoding). */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;
/** Deepest nesting of arrays and objects, the top-level array being level 1 (TALLY_INGEST_MAX_JSON_DEPTH). */
export const DEFAULT_MAX_JSON_DEPTH = 32;
/** Longest number or literal (true, false, null) outside strings; any contract field needs 20 at most. */
export const MAX_TOKEN_CHARS = 64;

export type SplitResult<E = string> =
  | { ok: true; events: E[] }
  | { ok: false; status: 400 | 413; message: string };

/** A splitter run in slices: each step scans about `budget` more bytes, and returns the result once done. */
export interface BodySplitter {
  step(budget: number): SplitResult<Buffer> | undefined;
}

/** What an element or a line costs in a step's budget besides its bytes (a Buffer view, a push). */
const ITEM_COST = 32;

const tooMany = (n: number, max: number): SplitResult<never> => ({
  ok: false, status: 413, message: `${n} events in one request; at most ${max}, split the batch`,
});

const NOT_AN_ARRAY: SplitResult<never> = {
  ok: false, status: 400, message: 'body must be a JSON array of events (or NDJSON with content-type application/x-ndjson)',
};

const invalid = (what: string, at: number): SplitResult<never> => ({
  ok: false, status: 400,
  message: `body is not a valid JSON array: ${what} at byte ${at}; send a JSON array of events, or NDJSON with content-type application/x-ndjson`,
});

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const LF = 0x0a;

// What a byte is outside strings.
const TOKEN = 0; // part of a number or literal (or garbage: that element's bad_json)
const SPACE = 1;
const STRING = 2;
const COMMA = 3;
const COLON = 4;
const OPEN = 5;
const CLOSE_ARRAY = 6;
const CLOSE_OBJECT = 7;
const KIND = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) KIND[c] = SPACE;
KIND[QUOTE] = STRING;
KIND[0x2c] = COMMA;
KIND[0x3a] = COLON;
KIND[OPEN_ARRAY] = OPEN;
KIND[OPEN_OBJECT] = OPEN;
KIND[0x5d] = CLOSE_ARRAY;
KIND[0x7d] = CLOSE_OBJECT;

// Where the scan is.
const BEFORE = 0; // before the opening [
const INSIDE = 1; // inside the top-level array
const AFTER = 2; // after its closing ]

/** The body without JSON whitespace around [start, end). */
function trimmed(b: Buffer, start: number, end: number): Buffer {
  while (start < end && KIND[b[start]] === SPACE) start++;
  while (end > start && KIND[b[end - 1]] === SPACE) end--;
  return b.subarray(start, end);
}

/**
 * The JSON-array splitter: one pass, constant work per byte, memory bounded by maxDepth (plus the
 * events, which are views of the body). It checks the array's structure only: `[` … `]` with
 * whitespace around, brackets balanced and matching, strings terminated, no empty element, depth
 * and token length bounded. Anything else wrong inside an element (a missing colon, `1 2`, a bad
 * escape) is that event's bad_json. Beyond maxEvents the elements are only counted, for the 413.
 */
export class JsonArraySplitter implements BodySplitter {
  private i = 0;
  private phase = BEFORE;
  private inString = false;
  /** The openers of the brackets still open: stack[1] is the top-level `[`. */
  private readonly stack: Uint8Array;
  private depth = 0;
  /** Start of the number or literal being read, -1 outside one. */
  private tokenStart = -1;
  private elementStart = 0;
  private elementHasContent = false;
  private count = 0;
  private events: Buffer[] = [];
  private result: SplitResult<Buffer> | undefined;

  constructor(
    private readonly body: Buffer,
    private readonly maxEvents = MAX_EVENTS,
    private readonly maxDepth = DEFAULT_MAX_JSON_DEPTH,
  ) {
    this.stack = new Uint8Array(maxDepth + 1);
  }

  step(budget: number): SplitResult<Buffer> | undefined {
    if (this.result !== undefined) return this.result;
    const b = this.body;
    const n = b.length;
    const stack = this.stack;
    const maxDepth = this.maxDepth;
    let limit = this.i + Math.max(1, budget);
    let stop = Math.min(n, limit);
    // The hot state in locals, written back when the slice ends.
    let i = this.i;
    let depth = this.depth;
    let inString = this.inString;
    let tokenStart = this.tokenStart;
    let has = this.elementHasContent;
    let phase = this.phase;
    while (i < stop) {
      if (inString) {
        for (; i < stop; i++) {
          const c = b[i];
          if (c === BACKSLASH) i++; // the escaped byte, whatever it is
          else if (c === QUOTE) break;
        }
        if (i < stop) {
          inString = false;
          i++;
        }
        continue;
      }
      const c = b[i];
      const kind = KIND[c];
      if (phase !== INSIDE) {
        if (kind !== SPACE) {
          if (phase === AFTER) return this.finish(invalid('unexpected text after the closing ]', i));
          if (c !== OPEN_ARRAY) return this.finish(NOT_AN_ARRAY);
          phase = INSIDE;
          stack[++depth] = OPEN_ARRAY;
          this.elementStart = i + 1;
        }
        i++;
        continue;
      }
      if (kind === TOKEN) {
        if (tokenStart < 0) tokenStart = i;
        else if (i - tokenStart >= MAX_TOKEN_CHARS) return this.finish(invalid(`a number or literal longer than ${MAX_TOKEN_CHARS} characters`, tokenStart));
        has = true;
        i++;
        continue;
      }
      tokenStart = -1;
      switch (kind) {
        case STRING:
          inString = true;
          has = true;
          break;
        case OPEN:
          if (depth >= maxDepth) {
            return this.finish(invalid(`nesting deeper than ${maxDepth} levels (at most ${maxDepth} levels of arrays and objects)`, i));
          }
          stack[++depth] = c;
          has = true;
          break;
        case CLOSE_ARRAY:
        case CLOSE_OBJECT: {
          const opener = kind === CLOSE_ARRAY ? OPEN_ARRAY : OPEN_OBJECT;
          if (stack[depth] !== opener) return this.finish(invalid(`${String.fromCharCode(c)} closes ${String.fromCharCode(stack[depth])}`, i));
          if (depth > 1) {
            depth--;
            break;
          }
          // The top-level array closes.
          if (!has) return this.finish(this.count === 0 ? { ok: false, status: 400, message: 'the array holds no events' } : invalid('an empty element (a comma before ])', i));
          this.endElement(i);
          depth = 0;
          phase = AFTER;
          break;
        }
        case COMMA:
          if (depth === 1) {
            if (!has) return this.finish(invalid('an empty element', i));
            this.endElement(i);
            this.elementStart = i + 1;
            has = false;
            limit -= ITEM_COST;
            stop = Math.min(n, limit);
          }
          break;
        case COLON:
          has = true;
          break;
        default: // whitespace
      }
      i++;
    }
    this.i = i;
    this.depth = depth;
    this.inString = inString;
    this.tokenStart = tokenStart;
    this.elementHasContent = has;
    this.phase = phase;
    if (i < n) return undefined;
    return this.finish(this.atEnd(n));
  }

  private endElement(end: number): void {
    this.count++;
    if (this.count <= this.maxEvents) this.events.push(trimmed(this.body, this.elementStart, end));
    else if (this.events.length > 0) this.events = [];
  }

  private atEnd(end: number): SplitResult<Buffer> {
    if (this.inString) return invalid('an unterminated string', end);
    if (this.phase === BEFORE) return NOT_AN_ARRAY;
    if (this.phase === INSIDE) return invalid(`${this.depth} bracket${this.depth === 1 ? '' : 's'} not closed`, end);
    if (this.count > this.maxEvents) return tooMany(this.count, this.maxEvents);
    return { ok: true, events: this.events };
  }

  private finish(r: SplitResult<Buffer>): SplitResult<Buffer> {
    this.result = r;
    this.i = this.body.length;
    this.events = [];
    return r;
  }
}

/**
 * NDJSON: one event per line (LF or CRLF); blank lines are skipped and not counted, so an
 * event's index is its position among the non-blank lines. Beyond maxEvents the non-blank lines
 * are only counted, for the 413.
 */
export class NdjsonSplitter implements BodySplitter {
  private i = 0;
  private count = 0;
  private events: Buffer[] = [];
  private result: SplitResult<Buffer> | undefined;

  constructor(private readonly body: Buffer, private readonly maxEvents = MAX_EVENTS) {}

  step(budget: number): SplitResult<Buffer> | undefined {
    if (this.result !== undefined) return this.result;
    const b = this.body;
    const n = b.length;
    let i = this.i;
    let left = Math.max(1, budget);
    while (left > 0) {
      // Whitespace, blank lines included, up to the next line's first byte.
      const limit = Math.min(n, i + left);
      const from = i;
      while (i < limit && KIND[b[i]] === SPACE) i++;
      left -= i - from;
      if (i >= n) {
        this.i = n;
        return this.finish();
      }
      if (i === limit) break;
      let end = b.indexOf(LF, i);
      if (end === -1) end = n;
      this.count++;
      if (this.count <= this.maxEvents) this.events.push(trimmed(b, i, end));
      else if (this.events.length > 0) this.events = [];
      left -= end - i + ITEM_COST;
      i = end + 1;
    }
    this.i = i;
    if (i >= n) return this.finish();
    return undefined;
  }

  private finish(): SplitResult<Buffer> {
    if (this.count > this.maxEvents) this.result = tooMany(this.count, this.maxEvents);
    else if (this.count === 0) this.result = { ok: false, status: 400, message: 'the body holds no events' };
    else this.result = { ok: true, events: this.events };
    this.events = [];
    return this.result;
  }
}

/** Runs a splitter to its end in one go; the events as strings. */
function runToEnd(splitter: BodySplitter): SplitResult {
  let r: SplitResult<Buffer> | undefined;
  while ((r = splitter.step(Number.POSITIVE_INFINITY)) === undefined);
  return r.ok ? { ok: true, events: r.events.map((e) => e.toString('utf8')) } : r;
}

/**
 * A JSON array of events → the text of each element, in one synchronous scan (the handler runs
 * a JsonArraySplitter on the body's bytes in slices). The elements may be anything (a non-object
 * element is refused per event as not_object, invalid JSON as bad_json).
 */
export function splitJsonArray(text: string, maxEvents = MAX_EVENTS, maxDepth = DEFAULT_MAX_JSON_DEPTH): SplitResult {
  return runToEnd(new JsonArraySplitter(Buffer.from(text, 'utf8'), maxEvents, maxDepth));
}

/** NDJSON → the text of each non-blank line, in one synchronous scan. */
export function splitNdjson(text: string, maxEvents = MAX_EVENTS): SplitResult {
  return runToEnd(new NdjsonSplitter(Buffer.from(text, 'utf8'), maxEvents));
}
