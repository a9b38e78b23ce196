import assert from 'node:assert/strict';
import type { DeadLetterReason } from '../../server/src/contracts/dead-letter-reasons.js';
import {
  dimensionFields, MAX_COST_MICROS, MAX_EVENT_BYTES, parseImpression, type ParseResult,
} from '../../server/src/impression/index.js';

const VALID = {
  impression_id: '5f0c2b9e-1a2b-4c3d-9e8f-0123456789ab',
  ts: 1764150000123,
  advertiser_id: 'adv-42',
  campaign_id: 'cmp-7',
  cost_micros: 1250,
  creative_id: 'cr-1',
  publisher_id: 'pub-3',
  country: 'DE',
  device: 'mobile',
};

function parse(doc: unknown): ParseResult {
  return parseImpression(Buffer.from(JSON.stringify(doc)));
}

function expectReason(result: ParseResult, reason: DeadLetterReason, field?: string): void {
  assert.equal(result.ok, false, `expected ${reason}, got ok`);
  if (result.ok) return;
  assert.equal(result.reason, reason, result.detail);
  if (field !== undefined) assert.match(result.detail, new RegExp(field));
}

function withField(field: string, value: unknown): Record<string, unknown> {
  return { ...VALID, [field]: value };
}

function without(field: string): Record<string, unknown> {
  const doc: Record<string, unknown> = { ...VALID };
  delete doc[field];
  return doc;
}

describe('parseImpression', () => {
  it('accepts the contract example and maps it to an Impression', () => {
    assert.deepEqual(parse(VALID), {
      ok: true,
      impression: {
        impressionId: VALID.impression_id, ts: VALID.ts, advertiserId: 'adv-42', campaignId: 'cmp-7', costMicros: 1250, dimensionValues: [],
      },
    });
  });

  it('reads the dimensions asked for; a value it cannot use is `unknown`, never a refusal', () => {
    const fields = dimensionFields(['creative_id', 'publisher_id', 'country', 'device']);
    const read = (doc: Record<string, unknown>) => {
      const r = parseImpression(Buffer.from(JSON.stringify(doc)), fields);
      assert.ok(r.ok, JSON.stringify(r));
      return r.impression.dimensionValues;
    };
    assert.deepEqual(read(VALID), ['cr-1', 'pub-3', 'DE', 'mobile']);
    assert.deepEqual(read({ ...VALID, creative_id: 42, publisher_id: null, country: '', device: 'x'.repeat(129) }), ['unknown', 'unknown', 'unknown', 'unknown']);
    assert.deepEqual(read({ ...VALID, creative_id: 'a\nb', device: 'Gerät 📱', country: 'x'.repeat(128) }), ['unknown', 'pub-3', 'x'.repeat(128), 'Gerät 📱']);
  });

  it('ignores unknown fields and defaults cost_micros to 0', () => {
    const r = parse({ ...without('cost_micros'), extra: { nested: [1, 2] }, device: 42 });
    assert.ok(r.ok);
    assert.equal(r.impression.costMicros, 0);
  });

  describe('bad_json', () => {
    it('refuses null, undefined and empty values', () => {
      expectReason(parseImpression(null), 'bad_json');
      expectReason(parseImpression(undefined), 'bad_json');
      expectReason(parseImpression(Buffer.alloc(0)), 'bad_json');
    });
    it('refuses unparseable JSON', () => {
      expectReason(parseImpression(Buffer.from('{"impression_id": "a",')), 'bad_json');
      expectReason(parseImpression(Buffer.from('not json')), 'bad_json');
    });
    it('refuses invalid UTF-8 even where JSON.parse of the replaced text would succeed', () => {
      const good = Buffer.from(JSON.stringify(withField('device', 'XX')));
      const at = good.indexOf('XX');
      good[at] = 0xc3; // a lead byte followed by 'X': invalid sequence
      expectReason(parseImpression(good), 'bad_json', 'UTF-8');
    });
    it('accepts valid multi-byte UTF-8 in ignored fields', () => {
      assert.ok(parse(withField('device', 'Gerät 📱')).ok);
    });
  });

  describe('not_object', () => {
    for (const text of ['[1,2]', '42', 'null', '"a string"', 'true']) {
      it(`refuses ${text}`, () => expectReason(parseImpression(Buffer.from(text)), 'not_object'));
    }
  });

  describe('too_large', () => {
    it('refuses values over MAX_EVENT_BYTES without parsing them', () => {
      const big = Buffer.alloc(MAX_EVENT_BYTES + 1, 0x20); // whitespace: not even JSON
      expectReason(parseImpression(big), 'too_large');
    });
    it('accepts a valid value of exactly MAX_EVENT_BYTES', () => {
      const base = JSON.stringify(withField('device', ''));
      const padded = base.replace('"device":""', `"device":"${'x'.repeat(MAX_EVENT_BYTES - base.length)}"`);
      const buf = Buffer.from(padded);
      assert.equal(buf.length, MAX_EVENT_BYTES);
      assert.ok(parseImpression(buf).ok);
    });
  });

  for (const field of ['impression_id', 'advertiser_id', 'campaign_id']) {
    describe(field, () => {
      it('missing → missing_field', () => expectReason(parse(without(field)), 'missing_field', field));
      it('non-string → bad_type', () => {
        expectReason(parse(withField(field, 42)), 'bad_type', field);
        expectReason(parse(withField(field, null)), 'bad_type', field);
        expectReason(parse(withField(field, ['a'])), 'bad_type', field);
      });
      it('pattern mismatch → bad_id', () => {
        for (const bad of ['', 'a b', 'a|b', 'é', 'x'.repeat(129), 'a\n']) expectReason(parse(withField(field, bad)), 'bad_id', field);
      });
      it('accepts the whole alphabet and 128 characters', () => {
        assert.ok(parse(withField(field, 'AZaz09._:-')).ok);
        assert.ok(parse(withField(field, 'x'.repeat(128))).ok);
      });
    });
  }

  describe('ts', () => {
    function tsOf(value: unknown): number {
      const r = parse(withField('ts', value));
      assert.ok(r.ok, `expected ${JSON.stringify(value)} to parse: ${r.ok ? '' : r.detail}`);
      return r.impression.ts;
    }

    it('missing → missing_field', () => expectReason(parse(without('ts')), 'missing_field', 'ts'));

    it('accepts epoch-ms integers in (0, 8.64e15]', () => {
      assert.equal(tsOf(1), 1);
      assert.equal(tsOf(8.64e15), 8.64e15);
    });

    it('refuses non-integer, non-positive, too large and non-number/string values', () => {
      for (const bad of [0, -1, 1.5, 8.64e15 + 1, null, true, {}, [1], '1764150000123']) {
        expectReason(parse(withField('ts', bad)), 'bad_timestamp', 'ts');
      }
      // 1e400 parses to Infinity
      const text = JSON.stringify(VALID).replace(`"ts":${VALID.ts}`, '"ts":1e400');
      expectReason(parseImpression(Buffer.from(text)), 'bad_timestamp');
    });

    it('accepts ISO-8601 with Z or an offset', () => {
      assert.equal(tsOf('2025-11-26T09:40:00.123Z'), Date.UTC(2025, 10, 26, 9, 40, 0, 123));
      assert.equal(tsOf('2025-11-26T10:40:00.123+01:00'), Date.UTC(2025, 10, 26, 9, 40, 0, 123));
      assert.equal(tsOf('2025-11-26T04:10:00-05:30'), Date.UTC(2025, 10, 26, 9, 40, 0, 0));
      assert.equal(tsOf('2025-11-26T09:40Z'), Date.UTC(2025, 10, 26, 9, 40));
      assert.equal(tsOf('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
    });

    it('truncates sub-millisecond fractions and pads short ones', () => {
      assert.equal(tsOf('2025-11-26T09:40:00.123999999Z'), Date.UTC(2025, 10, 26, 9, 40, 0, 123));
      assert.equal(tsOf('2025-11-26T09:40:00.5Z'), Date.UTC(2025, 10, 26, 9, 40, 0, 500));
    });

    it('refuses ISO strings without a zone, impossible dates and pre-epoch times', () => {
      for (const bad of [
        '2025-11-26T09:40:00', '2025-11-26T09:40:00.123', '2025-11-26', '2025-11-26 09:40:00Z',
        '2025-02-29T00:00:00Z', '2025-13-01T00:00:00Z', '2025-11-31T00:00:00Z', '2025-11-26T24:00:00Z',
        '2025-11-26T09:60:00Z', '2025-11-26T09:40:60Z', '2025-11-26T09:40:00+24:00', '2025-11-26T09:40:00+0100',
        '1969-12-31T23:59:59Z', '1970-01-01T00:00:00Z', '0070-01-02T00:00:00Z', 'yesterday',
      ]) {
        expectReason(parse(withField('ts', bad)), 'bad_timestamp', 'ts');
      }
    });
  });

  describe('cost_micros', () => {
    it('accepts 0 and MAX_COST_MICROS', () => {
      const zero = parse(withField('cost_micros', 0));
      assert.ok(zero.ok);
      assert.equal(zero.impression.costMicros, 0);
      const max = parse(withField('cost_micros', MAX_COST_MICROS));
      assert.ok(max.ok);
      assert.equal(max.impression.costMicros, MAX_COST_MICROS);
    });

    it('normalises -0 to 0', () => {
      const text = JSON.stringify(VALID).replace('"cost_micros":1250', '"cost_micros":-0');
      const r = parseImpression(Buffer.from(text));
      assert.ok(r.ok);
      assert.ok(Object.is(r.impression.costMicros, 0));
    });

    it('refuses negatives, fractions, unsafe integers, null and strings', () => {
      for (const bad of [-1, 0.5, MAX_COST_MICROS + 1, Number.MAX_SAFE_INTEGER + 1, null, '1250', true]) {
        expectReason(parse(withField('cost_micros', bad)), 'bad_cost', 'cost_micros');
      }
    });
  });

  it('reports the first failing field in contract order', () => {
    expectReason(parse({ ts: 'x', cost_micros: -1 }), 'missing_field', 'impression_id');
    expectReason(parse({ ...VALID, campaign_id: 1, ts: 'x' }), 'bad_type', 'campaign_id');
  });
});
