/**
 * The ingest body reader driven with real zlib streams and a fake request (a PassThrough with
 * headers): encodings, the size and inflate-ratio limits decided while inflating, the drain after
 * a refusal, aborted and mismatched requests.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { PassThrough } from 'node:stream';
import zlib from 'node:zlib';
import { ApiError } from '../../server/src/http/index.js';
import { contentEncoding, readBody, type BodySource } from '../../server/src/ingest/index.js';

function fakeRequest(headers: Record<string, string> = {}): PassThrough & BodySource {
  return Object.assign(new PassThrough(), { headers });
}

/** Writes `body` in chunks of `chunk` bytes, each on its own turn of the event loop, then ends. */
async function send(req: PassThrough, body: Buffer, chunk = 16 * 1024, end = true): Promise<void> {
  for (let o = 0; o < body.length; o += chunk) {
    if (req.destroyed) return;
    req.write(body.subarray(o, o + chunk));
    await new Promise((r) => setImmediate(r));
  }
  if (end && !req.destroyed) req.end();
}

async function refusal(p: Promise<Buffer>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    return err;
  }
  assert.fail('the body was accepted');
}

const events = Buffer.from(JSON.stringify(Array.from({ length: 200 }, (_, i) => ({
  impression_id: `i-${i}-${crypto.randomBytes(6).toString('hex')}`, ts: 1764150000123 + i, advertiser_id: 'adv-1', campaign_id: `cmp-${i % 7}`,
}))));

describe('ingest body reader', () => {
  it('identity, gzip, deflate and br give back the exact bytes; the header is case-insensitive', async () => {
    for (const [encoding, body] of [
      [undefined, events],
      ['identity', events],
      ['gzip', zlib.gzipSync(events)],
      ['GZip', zlib.gzipSync(events)],
      ['deflate', zlib.deflateSync(events)],
      ['br', zlib.brotliCompressSync(events)],
    ] as const) {
      const req = fakeRequest(encoding === undefined ? {} : { 'content-encoding': encoding });
      const read = readBody(req);
      await send(req, body, 1000);
      assert.ok((await read).equals(events), String(encoding));
    }
    const empty = fakeRequest();
    const read = readBody(empty);
    empty.end();
    assert.equal((await read).length, 0);
  });

  it('415 for any other content encoding, naming it; the request is still read to its end', async () => {
    assert.equal(contentEncoding(' gzip '), 'gzip');
    for (const encoding of ['compress', 'gzip, br', 'x-gzip', 'zstd']) {
      const req = fakeRequest({ 'content-encoding': encoding });
      const read = refusal(readBody(req));
      await send(req, events);
      const err = await read;
      assert.equal(err.status, 415);
      assert.equal(err.message, `unsupported content encoding ${JSON.stringify(encoding)} (identity, gzip, deflate or br)`);
      assert.ok(req.readableEnded, 'drained');
    }
  });

  it('a gzip bomb (4.9 KB → 5 MB of [) is refused by the ratio after ~100 × its size, long before 5 MB', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(5 * 1024 * 1024 - 1, '['), { level: 9 });
    assert.ok(bomb.length < 6_000);
    const req = fakeRequest({ 'content-encoding': 'gzip', 'content-length': String(bomb.length) });
    const t0 = performance.now();
    const read = refusal(readBody(req, { maxInflateRatio: 100 }));
    await send(req, bomb);
    const err = await read;
    assert.equal(err.status, 413);
    assert.match(err.message, /^compressed request body inflates more than 100 times its size \(\d+ bytes → over \d+\); at most 100:1 beyond the first 64 KiB$/);
    const [, compressed, inflated] = /\((\d+) bytes → over (\d+)\)/.exec(err.message)!.map(Number);
    assert.equal(compressed, bomb.length);
    assert.ok(inflated > 100 * compressed && inflated <= 100 * compressed + 64 * 1024, `stopped at ${inflated}`);
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(err.headers.Connection, undefined, 'the request had ended: the connection stays usable');
  });

  it('the ratio counts compressed bytes read so far, and the first 64 KiB are always allowed', async () => {
    const repetitive = (n: number) => Buffer.from('{"impression_id":"x"},'.repeat(Math.ceil(n / 22)).slice(0, n));
    const small = zlib.gzipSync(repetitive(60 * 1024));
    assert.ok(60 * 1024 > 100 * small.length, 'compresses more than 100:1');
    const ok = fakeRequest({ 'content-encoding': 'gzip' });
    const read = readBody(ok, { maxInflateRatio: 100 });
    await send(ok, small);
    assert.equal((await read).length, 60 * 1024);

    const big = zlib.gzipSync(repetitive(300 * 1024));
    const refused = fakeRequest({ 'content-encoding': 'gzip' });
    const r = refusal(readBody(refused, { maxInflateRatio: 100 }));
    await send(refused, big);
    assert.equal((await r).status, 413);
    // The same body with a looser ratio (TALLY_INGEST_MAX_INFLATE_RATIO) passes.
    const loose = fakeRequest({ 'content-encoding': 'deflate' });
    const l = readBody(loose, { maxInflateRatio: 10_000 });
    await send(loose, zlib.deflateSync(repetitive(300 * 1024)));
    assert.equal((await l).length, 300 * 1024);
  });

  it('413 beyond maxBytes after decoding, and beyond maxBytes on the wire', async () => {
    // About 1 bit of entropy per byte: compresses ~8:1, within the ratio, under the wire limit.
    const twoLetters = Buffer.from(Array.from(crypto.randomBytes(300 * 1024), (x) => (x & 1 ? 'a' : 'b')).join(''));
    const compressed = zlib.brotliCompressSync(twoLetters);
    assert.ok(compressed.length < 100 * 1024 && compressed.length * 100 > twoLetters.length);
    const inflated = fakeRequest({ 'content-encoding': 'br' });
    const a = refusal(readBody(inflated, { maxBytes: 100 * 1024 }));
    await send(inflated, compressed);
    const errA = await a;
    assert.equal(errA.status, 413);
    assert.match(errA.message, /more than 0\.1 MB after br decoding/);

    const wire = fakeRequest();
    const b = refusal(readBody(wire, { maxBytes: 100 * 1024 }));
    await send(wire, crypto.randomBytes(200 * 1024));
    const errB = await b;
    assert.equal(errB.status, 413);
    assert.match(errB.message, /more than 0\.1 MB on the wire/);
    assert.ok(wire.readableEnded, 'the rest was read and dropped');
  });

  it('a Content-Length over the limit: refused before reading; answered after the drain, or at once with Connection: close', async () => {
    const near = fakeRequest({ 'content-length': String(150 * 1024) });
    let settled = false;
    const a = refusal(readBody(near, { maxBytes: 100 * 1024 })).finally(() => { settled = true; });
    await send(near, crypto.randomBytes(150 * 1024), 16 * 1024, false);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(settled, false, 'waits for the client to finish sending');
    near.end();
    const errA = await a;
    assert.equal(errA.status, 413);
    assert.match(errA.message, /content-length 153600 bytes, at most 0\.1 MB/);
    assert.equal(errA.headers.Connection, undefined);

    const huge = fakeRequest({ 'content-length': String(10 * 1024 * 1024) });
    const errB = await refusal(readBody(huge, { maxBytes: 100 * 1024 }));
    assert.equal(errB.status, 413);
    assert.equal(errB.headers.Connection, 'close', 'too much to drain: answered at once, then the connection closes');
  });

  it('a client that stops sending after a refusal is answered after drainMs, with Connection: close', async () => {
    const req = fakeRequest({ 'content-encoding': 'gzip' });
    const t0 = performance.now();
    const read = refusal(readBody(req, { drainMs: 50 }));
    req.write(Buffer.from('definitely not gzip'));
    const err = await read;
    assert.equal(err.status, 400);
    assert.match(err.message, /not valid gzip data/);
    assert.equal(err.headers.Connection, 'close');
    assert.ok(performance.now() - t0 >= 45);
  });

  it('400 for invalid or truncated compressed data, a body shorter than Content-Length, and an aborted request', async () => {
    const gz = zlib.gzipSync(events);
    const truncated = fakeRequest({ 'content-encoding': 'gzip' });
    const a = refusal(readBody(truncated));
    await send(truncated, gz.subarray(0, gz.length - 20));
    const errA = await a;
    assert.equal(errA.status, 400);
    assert.match(errA.message, /not valid gzip data/);

    const short = fakeRequest({ 'content-length': String(events.length + 10) });
    const b = refusal(readBody(short));
    await send(short, events);
    const errB = await b;
    assert.equal(errB.status, 400);
    assert.match(errB.message, /does not match content-length/);

    const aborted = fakeRequest({ 'content-encoding': 'gzip' });
    const c = refusal(readBody(aborted));
    await send(aborted, gz.subarray(0, 100), 50, false);
    aborted.destroy();
    const errC = await c;
    assert.equal(errC.status, 400);
    assert.equal(errC.message, 'request aborted by the client');
  });
});
