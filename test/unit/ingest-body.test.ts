import assert from 'node:assert/strict';
import { splitJsonArray, splitNdjson, validateEvents } from '../../server/src/ingest/index.js';

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
