import assert from 'node:assert/strict';
import {
  EventValidator, JsonArraySplitter, NdjsonSplitter, splitJsonArray, splitNdjson, validateEvents, type SplitResult,
} from '../../server/src/ingest/index.js';

const ev = (id: string, extra = '') => `{"impression_id":"${id}","ts":1764150000123,"advertiser_id":"adv-1","campaign_id":"cmp-1"${extra}}`;

describe('ingest body', () => {
  it('a JSON array splits into each element\'s original text', () => {
    const a = ev('i-1', ',"note":"a, [b] {c} \\" ] , }"');
    const b = '{ "impression_id" : "i-2",\n  "ts": "2025-11-26T10:00:00Z", "advertiser_id":"adv-1","campaign_id":"cmp-1", "nested": {"x":[1,{"y":"]"}]} }';
    const text = `\n [ ${a} ,\n\t${b}, 42, "str", null, [1,2], {} ]\n`;
    const r = splitJsonArray(text);
    assert.ok(r.ok);
    assert.deepEqual(r.events, [a, b, '42', '"str"', 'null', '[1,2]', '{}']);
  });

  it('strings with escaped backslashes before quotes do not confuse the scan', () => {
    const a = '{"impression_id":"i-1","x":"\\\\","y":"\\\\\\"]"}';
    const r = splitJsonArray(`[${a},${a}]`);
    assert.ok(r.ok);
    assert.deepEqual(r.events, [a, a]);
    assert.deepEqual(JSON.parse(r.events[0]), JSON.parse(a));
  });

  it('refuses bodies that are not a JSON array, empty arrays and too many events', () => {
    for (const [text, status] of [
      ['', 400], ['[', 400], ['{"impression_id":"i"}', 400], ['"x"', 400], ['[]', 400], ['[1,]', 400], ['[1] x', 400],
      [`[${'1,'.repeat(10)}1]`, 413],
    ] as const) {
      const r = splitJsonArray(text, 10);
      assert.ok(!r.ok, text);
      assert.equal(r.status, status, text);
    }
    assert.ok(splitJsonArray(`[${'1,'.repeat(9)}1]`, 10).ok);
  });

  it('NDJSON: one event per line, CRLF and blank lines tolerated, indexes count events', () => {
    const r = splitNdjson(`${ev('a')}\r\n\n  \n${ev('b')}\nnot json\n${ev('c')}`);
    assert.ok(r.ok);
    assert.deepEqual(r.events, [ev('a'), ev('b'), 'not json', ev('c')]);
    const none = splitNdjson('\n \r\n');
    assert.ok(!none.ok);
    assert.equal(none.status, 400);
    const many = splitNdjson('1\n2\n3\n', 2);
    assert.ok(!many.ok);
    assert.equal(many.status, 413);
    assert.match(many.message, /^3 events/);
  });

  it('validateEvents: contract reasons per index (future_timestamp too); records keyed by impression_id with the original bytes', () => {
    const events = [
      ev('i-1', ' , "unknown": true'),
      'not json',
      '42',
      '{"ts":1}',
      ev('bad id'),
      ev('i-2').replace('1764150000123', '"2025-11-26T10:00:00"'),
      ev('i-3', ',"cost_micros":-1'),
      ev('i-4', `,"pad":"${'x'.repeat(17_000)}"`),
      ev('i-5', ',"cost_micros":1250'),
      ev('i-6').replace('1764150000123', String(1764150000123 + 300_001)),
      ev('i-7').replace('1764150000123', String(1764150000123 + 300_000)),
    ];
    const { records, response } = validateEvents('impressions', events, { now: 1764150000123, maxClockSkewMs: 300_000 });
    assert.deepEqual(response.errors.map((e) => [e.index, e.reason]), [
      [1, 'bad_json'], [2, 'not_object'], [3, 'missing_field'], [4, 'bad_id'], [5, 'bad_timestamp'], [6, 'bad_cost'], [7, 'too_large'],
      [9, 'future_timestamp'],
    ]);
    assert.equal(response.accepted, 3);
    assert.equal(response.rejected, 8);
    assert.deepEqual(records.map((r) => [r.topic, r.partition, r.key, r.value?.toString('utf8')]), [
      ['impressions', null, 'i-1', events[0]],
      ['impressions', null, 'i-5', events[8]],
      ['impressions', null, 'i-7', events[10]],
    ]);
    for (const e of response.errors) assert.ok(e.message.length > 0);
  });
});

describe('ingest body: the structural scan', () => {
  const refused = (text: string, status: number, message: RegExp, maxEvents?: number, maxDepth?: number) => {
    const r = splitJsonArray(text, maxEvents, maxDepth);
    assert.ok(!r.ok, text.slice(0, 80));
    assert.equal(r.status, status, text.slice(0, 80));
    assert.match(r.message, message, text.slice(0, 80));
  };

  it('nesting: up to maxDepth levels (the top-level array is level 1), 400 naming the limit beyond', () => {
    const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
    const ok = splitJsonArray(nested(32));
    assert.ok(ok.ok);
    assert.deepEqual(ok.events, [nested(31)]);
    refused(nested(33), 400, /nesting deeper than 32 levels/);
    // Objects count as levels too, and the limit is a parameter (TALLY_INGEST_MAX_JSON_DEPTH).
    assert.ok(splitJsonArray('[{"a":{"b":[1]}}]', 10, 4).ok);
    refused('[{"a":{"b":[[1]]}}]', 400, /nesting deeper than 4 levels/, 10, 4);
    // The depth bomb of the issue: refused at the 33rd bracket, whatever follows.
    const t0 = performance.now();
    refused(nested(2_500_000), 400, /nesting deeper than 32 levels .* at byte 32;/);
    assert.ok(performance.now() - t0 < 200, 'refused without reading the rest');
  });

  it('numbers and literals: at most 64 characters; strings may be long (too_large per event instead)', () => {
    const n64 = `1${'0'.repeat(63)}`;
    const ok = splitJsonArray(`[${n64}, true ,-1.5e+10]`);
    assert.ok(ok.ok);
    assert.deepEqual(ok.events, [n64, 'true', '-1.5e+10']);
    refused(`[${n64}0]`, 400, /a number or literal longer than 64 characters at byte 1;/);
    refused(`[{"a":${'9'.repeat(65)}}]`, 400, /longer than 64 characters at byte 6;/);
    refused(`[nul${'l'.repeat(100)}]`, 400, /longer than 64 characters/);
    refused(`[${'1'.repeat(5 * 1024 * 1024 - 2)}]`, 400, /longer than 64 characters/);
    const long = splitJsonArray(`["${'x'.repeat(100_000)}"]`);
    assert.ok(long.ok);
    assert.equal(long.events[0].length, 100_002);
  });

  it('mismatched and unbalanced brackets, unterminated strings, empty elements, text outside the array: 400', () => {
    for (const [text, message] of [
      ['[{]', /\] closes \{ at byte 2;/],
      ['[[}]', /\} closes \[ at byte 2;/],
      ['[}', /\} closes \[/],
      ['[{"a":1]', /\] closes \{/],
      ['[1]]', /unexpected text after the closing \] at byte 3;/],
      ['[1] x', /unexpected text after the closing \]/],
      ['[1][2]', /unexpected text after the closing \]/],
      ['[[1]', /1 bracket not closed/],
      ['[{"a":[', /3 brackets not closed/],
      ['["abc]', /an unterminated string/],
      ['["abc\\"]', /an unterminated string/],
      ['["abc\\', /an unterminated string/],
      ['[1,,2]', /an empty element at byte 3;/],
      ['[,1]', /an empty element at byte 1;/],
      ['[ , ]', /an empty element/],
      ['[1, ]', /an empty element \(a comma before \]\)/],
      [']', /must be a JSON array/],
      ['x[1]', /must be a JSON array/],
      ['  \n ', /must be a JSON array/],
    ] as const) refused(text, 400, message);
    refused('[ \n ]', 400, /the array holds no events/);
  });

  it('strings may hold brackets, commas, escaped quotes and backslashes; whitespace around elements is not theirs', () => {
    const elements = [
      '"[{,}]"',
      '"\\"]"',
      '"\\\\"',
      '"a\\\\\\"b,]"',
      '{"k":"}","v":["]",{"x":"\\u005d"}]}',
      '"é ✓ 😀 ]"',
      '[]',
      '{}',
    ];
    const r = splitJsonArray(` [\t${elements.join(' ,\r\n')}\n] \n`);
    assert.ok(r.ok);
    assert.deepEqual(r.events, elements);
    for (const e of r.events) JSON.parse(e);
  });

  it('elements are split, not parsed: one that is not JSON is left to the per-event check (bad_json)', () => {
    const r = splitJsonArray('[1 2, {"a" 1}, {"ok":true}, tru]');
    assert.ok(r.ok);
    assert.deepEqual(r.events, ['1 2', '{"a" 1}', '{"ok":true}', 'tru']);
    const { response } = validateEvents('impressions', r.events, { now: 0, maxClockSkewMs: 0 });
    assert.deepEqual(response.errors.map((e) => [e.index, e.reason]), [[0, 'bad_json'], [1, 'bad_json'], [2, 'missing_field'], [3, 'bad_json']]);
  });

  it('413 counts every element, past maxEvents', () => {
    refused(`[${'{"a":[1,2]},'.repeat(24)}{}]`, 413, /^25 events in one request; at most 10, split the batch$/, 10);
  });

  it('in slices: any budget gives what one pass gives, for arrays and NDJSON, accepted or refused', () => {
    const bodies = [
      `[${ev('a', ',"n":"[\\"]{"')}, ${ev('b')} ,{"x":[1,{"y":"\\\\"}]}, 12345 ]`,
      '[[[[1]]]]', '[1,]', '[{"a":"\\', `[${'1,'.repeat(30)}1]`, '[1] ]', '["x"', `[${'9'.repeat(70)}]`,
    ];
    for (const body of bodies) {
      const once = new JsonArraySplitter(Buffer.from(body), 20, 4).step(Number.POSITIVE_INFINITY);
      for (const budget of [1, 2, 3, 7, 64]) {
        const s = new JsonArraySplitter(Buffer.from(body), 20, 4);
        let r: SplitResult<Buffer> | undefined;
        let steps = 0;
        while ((r = s.step(budget)) === undefined) steps++;
        assert.deepEqual(r, once, `${body} by ${budget}`);
        if (budget === 1 && body.length > 10 && once?.ok) assert.ok(steps > 5, 'it did run in many steps');
      }
    }
    const nd = `\n${ev('a')}\r\n  \n${ev('b')}\n\n\nnot json\n${ev('c')}`;
    const once = new NdjsonSplitter(Buffer.from(nd)).step(Number.POSITIVE_INFINITY);
    assert.ok(once?.ok);
    assert.equal(once.events.length, 4);
    for (const budget of [1, 5, 33]) {
      const s = new NdjsonSplitter(Buffer.from(nd));
      let r: SplitResult<Buffer> | undefined;
      while ((r = s.step(budget)) === undefined);
      assert.deepEqual(r, once);
    }
  });

  it('events are views of the body: byte for byte, UTF-8 included', () => {
    const a = '{"impression_id":"i-1","note":"café ✓"}';
    const body = Buffer.from(`[${a} , 7]`);
    const r = new JsonArraySplitter(body).step(Number.POSITIVE_INFINITY);
    assert.ok(r?.ok);
    assert.deepEqual(r.events.map((e) => e.toString('utf8')), [a, '7']);
    assert.equal(r.events[0].buffer, body.buffer, 'no copy');
  });

  it('EventValidator: advertiser_not_allowed per event, before the clock check; slices give what one pass gives', () => {
    const events = [ev('i-1'), ev('i-2').replace('adv-1', 'adv-2'), ev('i-3').replace('1764150000123', '1764159999999'), '{', ev('i-4')];
    const clock = { now: 1764150000123, maxClockSkewMs: 1000 };
    const whole = validateEvents('impressions', events, clock, ['adv-1']);
    assert.deepEqual(whole.response.errors, [
      { index: 1, reason: 'advertiser_not_allowed', message: 'this token may not ingest events of advertiser "adv-2"' },
      { index: 2, reason: 'future_timestamp', message: 'ts is 9999876 ms ahead of the server clock; at most 1000 ms allowed' },
      { index: 3, reason: 'bad_json', message: 'value is not valid JSON' },
    ]);
    assert.deepEqual(whole.records.map((r) => r.key), ['i-1', 'i-4']);
    const any = validateEvents('impressions', events, clock, null);
    assert.deepEqual(any.records.map((r) => r.key), ['i-1', 'i-2', 'i-4']);

    const v = new EventValidator('impressions', events.map((e) => Buffer.from(e)), clock, ['adv-1']);
    let steps = 0;
    while (!v.step(1)) steps++;
    assert.equal(steps, events.length - 1, 'one event per step at the smallest budget');
    assert.deepEqual(v.outcome(), whole);
    assert.deepEqual(v.refusedAdvertisers(), ['adv-2']);
  });
});
