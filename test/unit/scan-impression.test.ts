import assert from 'node:assert/strict';
import { parseImpressionJson } from '../../server/src/impression/parse-impression.js';
import { scanImpression } from '../../server/src/impression/scan-impression.js';
import { dimensionFields, NO_DIMENSIONS, type DimensionFields } from '../../server/src/impression/index.js';
import { DIMENSIONS } from '../../server/src/contracts/dimensions.js';

/** A tiny deterministic PRNG so a failure can be reproduced from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Values a field may be given: valid ones and every kind of near miss the full path refuses or reads differently. */
const ID_VALUES = ['"adv-1"', '"a"', `"${'x'.repeat(128)}"`, `"${'x'.repeat(129)}"`, '""', '"a b"', '"a\\u0062"', '"é"', '7', 'null', '"a/b"', '"A.b:c_d-9"', '["a"]', '{"a":1}', 'true'];
const TS_VALUES = ['1764150000123', '0', '-5', '1.5', '1e12', '1764150000123.0', '01764150000123', '8640000000000000', '8640000000000001', '99999999999999999', '"2025-11-26T10:00:00Z"', '"1764150000123"', 'null', '1', 'false'];
const COST_VALUES = ['1250', '0', '-0', '-1', '1000000000000', '1000000000001', '12.5', '1e3', '00', '"5"', 'null', '9007199254740993', '[]'];
const EXTRA_VALUES = ['"DE"', '""', `"${'y'.repeat(128)}"`, `"${'y'.repeat(129)}"`, '"a\u007fb"', '"ab"', '"unknown"', '1', '-1', '1.5', 'true', 'false', 'null', '{"x":[1,2]}', '[1,"]"]', '"a\\"b"', '"ü"', 'tru', 'nul'];
const WS = ['', ' ', '\n', '\t', '\r\n  '];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)];
}

function randomDocument(r: () => number): string {
  const fields: Array<[string, string]> = [
    ['impression_id', r() < 0.7 ? '"imp-1"' : pick(r, ID_VALUES)],
    ['ts', r() < 0.7 ? '1764150000123' : pick(r, TS_VALUES)],
    ['advertiser_id', r() < 0.7 ? '"adv-42"' : pick(r, ID_VALUES)],
    ['campaign_id', r() < 0.7 ? '"cmp-7"' : pick(r, ID_VALUES)],
  ];
  if (r() < 0.8) fields.push(['cost_micros', r() < 0.6 ? '1250' : pick(r, COST_VALUES)]);
  const extras = Math.floor(r() * 3);
  for (let k = 0; k < extras; k++) fields.push([pick(r, ['country', 'device', 'creative_id', 'publisher_id', 'ts2', 'impression_i', 'c', 'countr']), pick(r, EXTRA_VALUES)]);
  if (r() < 0.1) fields.splice(Math.floor(r() * fields.length), 1);
  if (r() < 0.1) fields.push(pick(r, fields)); // a repeated key: JSON.parse keeps the last
  for (let k = fields.length - 1; k > 0; k--) {
    const j = Math.floor(r() * (k + 1));
    [fields[k], fields[j]] = [fields[j], fields[k]];
  }
  const w = () => pick(r, WS);
  let body = `${w()}{${w()}${fields.map(([k, v]) => `"${k}"${w()}:${w()}${v}`).join(`${w()},${w()}`)}${w()}}${w()}`;
  if (r() < 0.05) body = body.slice(0, Math.floor(r() * body.length)); // truncated
  if (r() < 0.03) body += pick(r, ['x', ',', '}', '{}']);
  return body;
}

describe('scanImpression (the hot path of parseImpression)', () => {
  it('reads the common shape, in any key order and with extra fields', () => {
    const doc = '{"country":"DE","ts":1764150000123,"campaign_id":"cmp-7","impression_id":"5f0c2b9e-1a2b","advertiser_id":"adv-42","cost_micros":1250,"x":null}';
    assert.deepEqual(scanImpression(Buffer.from(doc)), {
      impressionId: '5f0c2b9e-1a2b', ts: 1764150000123, advertiserId: 'adv-42', campaignId: 'cmp-7', costMicros: 1250, dimensionValues: [],
    });
  });

  it('reads the dimensions asked for, in their order, and `unknown` for those absent or unusable', () => {
    const doc = '{"country":"DE","ts":1764150000123,"campaign_id":"cmp-7","impression_id":"i-1","advertiser_id":"adv-42","device":"","creative_id":"cr-1"}';
    const fields = dimensionFields(['device', 'country', 'publisher_id', 'creative_id']);
    assert.deepEqual(scanImpression(Buffer.from(doc), fields)?.dimensionValues, ['unknown', 'DE', 'unknown', 'cr-1']);
    assert.deepEqual(scanImpression(Buffer.from(doc))?.dimensionValues, [], 'none asked for: none read');
  });

  it('checks every id it has not accepted before: a value seen as a valid dimension value is still no valid id', () => {
    const fields = dimensionFields(['country']);
    const valid = '{"impression_id":"i-1","ts":1,"advertiser_id":"adv-1","campaign_id":"cmp-1","country":"a b"}';
    assert.deepEqual(scanImpression(Buffer.from(valid), fields)?.dimensionValues, ['a b']);
    for (let i = 0; i < 2; i++) {
      assert.equal(scanImpression(Buffer.from('{"impression_id":"i-2","ts":1,"advertiser_id":"adv-1","campaign_id":"a b"}'), fields), null);
      assert.equal(scanImpression(Buffer.from('{"impression_id":"i-3","ts":1,"advertiser_id":"a b","campaign_id":"cmp-1"}'), fields), null);
    }
    assert.equal(scanImpression(Buffer.from(valid), fields)?.campaignId, 'cmp-1', 'a remembered valid id is still read');
  });

  it('leaves what it cannot be sure of to the full path', () => {
    for (const doc of [
      '{"impression_id":"a\\u0062","ts":1,"advertiser_id":"a","campaign_id":"c"}', // escape
      '{"impression_id":"a","ts":"2025-11-26T10:00:00Z","advertiser_id":"a","campaign_id":"c"}', // ISO time
      '{"impression_id":"a","ts":1,"advertiser_id":"a","campaign_id":"c","ts":2}', // repeated key
      '{"impression_id":"a","ts":1e3,"advertiser_id":"a","campaign_id":"c"}', // exponent
      '{"impression_id":"a","ts":1,"advertiser_id":"a","campaign_id":"c"', // truncated
      '\uFEFF{"impression_id":"a","ts":1,"advertiser_id":"a","campaign_id":"c"}', // BOM
    ]) assert.equal(scanImpression(Buffer.from(doc)), null, doc);
  });

  for (const [name, fields] of [['no dimensions', NO_DIMENSIONS], ['every dimension', dimensionFields(DIMENSIONS)]] as Array<[string, DimensionFields]>) it(`agrees with the full JSON.parse path on every document it accepts (20,000 random near-valid documents, ${name})`, () => {
    const r = rng(20261127);
    let accepted = 0;
    let refusedByBoth = 0;
    for (let n = 0; n < 20_000; n++) {
      const body = randomDocument(r);
      const value = Buffer.from(body);
      const fast = scanImpression(value, fields);
      const full = parseImpressionJson(value, fields);
      if (fast === null) {
        if (!full.ok) refusedByBoth++;
        continue;
      }
      accepted++;
      assert.deepEqual({ ok: true, impression: fast }, full, `document ${n}: ${body}`);
    }
    // The generator must exercise both sides, or the comparison proves nothing.
    assert.ok(accepted > 1_500, `only ${accepted} documents took the fast path`);
    assert.ok(refusedByBoth > 3_000, `only ${refusedByBoth} invalid documents`);
  });
});
