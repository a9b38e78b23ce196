/**
 * Reads an ingest request body with bounded decompression: Content-Encoding identity, gzip,
 * deflate or br, inflated by node:zlib streams (the work runs in the threadpool, the event loop
 * only sees 16 KiB chunks). Counted while reading, refused as soon as one limit is passed:
 * - more than maxBytes on the wire (or a Content-Length saying so) → 413;
 * - more than maxBytes after decoding → 413;
 * - more than maxInflateRatio × the compressed bytes read so far after decoding, beyond the
 *   first inflateAllowanceBytes → 413 (a 5 KB gzip of 5 MB of `[` stops after ~500 KB);
 * - a body shorter than its Content-Length, or the client gone → 400; invalid compressed data → 400.
 *
 * On a refusal the decoder is destroyed and the rest of the request is read and dropped (no
 * decoding), so the client, still sending, gets its answer on a connection that stays usable. A
 * client that would send more than 2 × maxBytes after the refusal, or for longer than DRAIN_MS,
 * gets the answer at once with `Connection: close`. Every failure is an ApiError (a JSON 4xx).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { ApiError, badRequest } from '../http/index.js';
import { MAX_BODY_BYTES } from './body.js';

export type ContentEncoding = 'identity' | 'gzip' | 'deflate' | 'br';

/** The request as far as reading its body goes (an http.IncomingMessage, or a fake in tests). */
export type BodySource = Readable & { headers: IncomingHttpHeaders };

export interface BodyLimits {
  /**
   * Most bytes on the wire and most bytes after decoding.
   * @default MAX_BODY_BYTES (5 MB)
   */
  maxBytes?: number;
  /**
   * Decoded bytes may be at most this many times the compressed bytes read so far (TALLY_INGEST_MAX_INFLATE_RATIO).
   * @default 100
   */
  maxInflateRatio?: number;
  /**
   * Decoded bytes always allowed, whatever the ratio (a small request compresses well too).
   * @default 64 KiB
   */
  inflateAllowanceBytes?: number;
  /**
   * After a refusal, how long the rest of the request is read and dropped before answering anyway (with Connection: close).
   * @default DRAIN_MS
   */
  drainMs?: number;
}

export const DEFAULT_MAX_INFLATE_RATIO = 100;
export const INFLATE_ALLOWANCE_BYTES = 64 * 1024;
export const DRAIN_MS = 5_000;

const ENCODINGS: readonly ContentEncoding[] = ['identity', 'gzip', 'deflate', 'br'];

/** The request's Content-Encoding; a 415 ApiError for anything but one of identity, gzip, deflate, br. */
export function contentEncoding(header: string | undefined): ContentEncoding {
  const value = (header ?? '').trim().toLowerCase();
  if (value === '') return 'identity';
  if ((ENCODINGS as readonly string[]).includes(value)) return value as ContentEncoding;
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return unsupported(`unsupported content encoding ${JSON.stringify(shown)} (identity, gzip, deflate or br)`);
}

function unsupported(message: string): never {
  throw new ApiError(415, message);
}

function decoderFor(encoding: Exclude<ContentEncoding, 'identity'>): Transform {
  switch (encoding) {
    case 'gzip': return zlib.createGunzip();
    case 'deflate': return zlib.createInflate();
    case 'br': return zlib.createBrotliDecompress();
  }
}

const mb = (n: number) => `${Math.round((n / (1024 * 1024)) * 10) / 10} MB`;

/** Reads, decodes and bounds the body; resolves with the decoded bytes or rejects with an ApiError. */
export function readBody(req: BodySource, limits: BodyLimits = {}): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    new BodyReader(req, limits, resolve, reject).start();
  });
}

/** One body being read: counts, the decoder, the refusal and its drain. */
class BodyReader {
  private readonly maxBytes: number;
  private readonly maxRatio: number;
  private readonly allowance: number;
  private readonly drainMs: number;
  private encoding: ContentEncoding = 'identity';
  private declared: number | undefined;
  private decoder: Transform | undefined;
  private readonly chunks: Buffer[] = [];
  /** Bytes read from the request (before a refusal). */
  private compressed = 0;
  /** Bytes read from the request and dropped after a refusal. */
  private dropped = 0;
  /** Bytes after decoding. */
  private inflated = 0;
  private requestEnded = false;
  private refusal: ApiError | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private settled = false;

  constructor(
    private readonly req: BodySource,
    limits: BodyLimits,
    private readonly resolve: (body: Buffer) => void,
    private readonly reject: (err: ApiError) => void,
  ) {
    this.maxBytes = limits.maxBytes ?? MAX_BODY_BYTES;
    this.maxRatio = limits.maxInflateRatio ?? DEFAULT_MAX_INFLATE_RATIO;
    this.allowance = limits.inflateAllowanceBytes ?? INFLATE_ALLOWANCE_BYTES;
    this.drainMs = limits.drainMs ?? DRAIN_MS;
  }

  start(): void {
    const req = this.req;
    req.on('data', (chunk: Buffer) => this.onData(chunk));
    req.on('end', () => this.onRequestEnd());
    req.on('error', () => this.onGone());
    req.on('close', () => this.onGone());
    try {
      this.encoding = contentEncoding(headerValue(req.headers['content-encoding']));
    } catch (err) {
      return this.refuse(err as ApiError);
    }
    const length = headerValue(req.headers['content-length']);
    if (length !== undefined && /^\d+$/.test(length.trim())) this.declared = Number(length.trim());
    if (this.declared !== undefined && this.declared > this.maxBytes) {
      return this.refuse(new ApiError(413, `request body too large: content-length ${this.declared} bytes, at most ${mb(this.maxBytes)}`));
    }
    if (this.encoding !== 'identity') {
      const decoder = decoderFor(this.encoding);
      this.decoder = decoder;
      decoder.on('data', (chunk: Buffer) => this.onDecoded(chunk));
      decoder.on('end', () => this.onDecodedEnd());
      decoder.on('error', () => this.refuse(badRequest(`request body is not valid ${this.encoding} data (content-encoding ${this.encoding})`)));
    }
  }

  private onData(chunk: Buffer): void {
    if (this.settled || this.refusal !== undefined) {
      this.dropped += chunk.length;
      if (this.dropped > this.maxDropBytes()) this.answerNow();
      return;
    }
    this.compressed += chunk.length;
    if (this.compressed > this.maxBytes) {
      return this.refuse(new ApiError(413, `request body too large: more than ${mb(this.maxBytes)} on the wire`));
    }
    const decoder = this.decoder;
    if (decoder === undefined) {
      this.inflated += chunk.length;
      this.chunks.push(chunk);
    } else if (!decoder.write(chunk)) {
      // Backpressure: the threadpool is behind; read on when the decoder drains.
      this.req.pause();
      decoder.once('drain', () => {
        if (this.refusal === undefined) this.req.resume();
      });
    }
  }

  private onDecoded(chunk: Buffer): void {
    if (this.settled || this.refusal !== undefined) return;
    this.inflated += chunk.length;
    if (this.inflated > this.maxBytes) {
      return this.refuse(new ApiError(413, `request body too large: more than ${mb(this.maxBytes)} after ${this.encoding} decoding`));
    }
    if (this.inflated > this.allowance && this.inflated > this.maxRatio * this.compressed) {
      return this.refuse(new ApiError(413,
        `compressed request body inflates more than ${this.maxRatio} times its size (${this.compressed} bytes → over ${this.inflated}); at most ${this.maxRatio}:1 beyond the first ${this.allowance / 1024} KiB`));
    }
    this.chunks.push(chunk);
  }

  private onRequestEnd(): void {
    this.requestEnded = true;
    if (this.settled) return;
    if (this.refusal !== undefined) return this.settle(this.refusal);
    if (this.declared !== undefined && this.compressed !== this.declared) {
      return this.settle(badRequest(`request body size does not match content-length (${this.compressed} of ${this.declared} bytes)`));
    }
    if (this.decoder === undefined) return this.settle(Buffer.concat(this.chunks, this.inflated));
    this.decoder.end();
  }

  private onDecodedEnd(): void {
    if (this.settled || this.refusal !== undefined) return;
    this.settle(Buffer.concat(this.chunks, this.inflated));
  }

  /** The request errored or closed: an abort unless it had ended. */
  private onGone(): void {
    if (this.requestEnded || this.settled) return;
    this.stopDecoder();
    this.settle(this.refusal ?? badRequest('request aborted by the client'));
  }

  /**
   * Stops decoding and answers `err` once the rest of the request has been read and dropped (at
   * once if it already has), or sooner with Connection: close when the client would make us wait.
   */
  private refuse(err: ApiError): void {
    if (this.settled || this.refusal !== undefined) return;
    this.refusal = err;
    this.stopDecoder();
    this.chunks.length = 0;
    if (this.requestEnded) return this.settle(err);
    const left = this.declared === undefined ? 0 : this.declared - this.compressed;
    if (left > this.maxDropBytes()) return this.answerNow();
    this.req.resume();
    this.drainTimer = setTimeout(() => this.answerNow(), this.drainMs);
    this.drainTimer.unref();
  }

  /** Most bytes read and dropped after a refusal (body-parser drops all; the wire limit twice over here). */
  private maxDropBytes(): number {
    return 2 * this.maxBytes;
  }

  /** Answers the refusal without waiting for the rest of the request; the connection closes after the answer. */
  private answerNow(): void {
    if (this.settled) return;
    const err = this.refusal ?? badRequest('request refused');
    this.settle(new ApiError(err.status, err.message, err.parameter, { ...err.headers, Connection: 'close' }));
  }

  private stopDecoder(): void {
    const decoder = this.decoder;
    if (decoder === undefined) return;
    this.decoder = undefined;
    decoder.removeAllListeners('data');
    decoder.removeAllListeners('end');
    decoder.on('error', () => undefined);
    decoder.destroy();
  }

  private settle(outcome: Buffer | ApiError): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.drainTimer);
    if (outcome instanceof ApiError) {
      this.chunks.length = 0;
      // Read on (and drop) whatever else comes, so the connection is not stuck on a paused request.
      if (!this.requestEnded) this.req.resume();
      this.reject(outcome);
    } else this.resolve(outcome);
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
