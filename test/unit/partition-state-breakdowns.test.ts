import assert from 'node:assert/strict';
import type { Impression } from '../../server/src/impression/index.js';
import {
  checkCountRecord, decodeWindowRow, encodeWindowRow, type DimensionBreakdown, type WindowCountRecord, type WindowRow,
} from '../../server/src/contracts/count-record.js';
import type { Dimension } from '../../server/src/contracts/dimensions.js';
import { MIN, T0, P, imp, newState, feed, drain, rowOf } from './partition-state-fixtures.js';

const DIMS: Dimension[] = ['creative_id', 'country'];

/** An impression with its values of DIMS (creative, country). */
function dimImp(id: string, creative: string, country: string, cost = 100, ts = T0 + 1): Impression {
  return { ...imp(id, ts, 'adv-1', 'cmp-1', cost), dimensionValues: [creative, country] };
}

/** value → [impressions, spend] of one dimension of a row. */
function cells(row: WindowRow, dimension: Dimension): Map<string, [number, bigint]> {
  const b = row.breakdowns?.find((d) => d.dimension === dimension);
  assert.ok(b, `no ${dimension} breakdown in ${JSON.stringify(row.breakdowns, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
  return new Map(b.values.map((v) => [v.value, [v.impressions, v.spendMicros]]));
}

function sums(row: WindowRow, dimension: Dimension): [number, bigint] {
  let n = 0;
  let spend = 0n;
  for (const [i, s] of cells(row, dimension).values()) {
    n += i;
    spend += s;
  }
  return [n, spend];
}

describe('PartitionState breakdowns', () => {
  it('counts each new impression once in its value of every dimension; duplicates add nothing; each dimension sums to the row', () => {
    const s = newState({ dimensions: DIMS });
    feed(s, dimImp('a', 'cr-1', 'DE', 100));
    feed(s, dimImp('b', 'cr-1', 'FR', 250));
    feed(s, dimImp('c', 'cr-2', 'unknown', 7));
    feed(s, dimImp('a', 'cr-9', 'US', 100)); // a duplicate of a: its values are not counted again
    const row = rowOf(drain(s), T0);
    assert.deepEqual([row.impressions, row.spendMicros, row.duplicates], [3, 357n, 1]);
    assert.deepEqual(cells(row, 'creative_id'), new Map([['cr-1', [2, 350n]], ['cr-2', [1, 7n]]]));
    assert.deepEqual(cells(row, 'country'), new Map([['DE', [1, 100n]], ['FR', [1, 250n]], ['unknown', [1, 7n]]]));
    for (const d of DIMS) assert.deepEqual(sums(row, d), [row.impressions, row.spendMicros]);
  });

  it('keeps the first `limit` values by name and counts every later new value exactly in `other`', () => {
    const s = newState({ dimensions: DIMS, dimensionValueLimit: 3 });
    ['cr-1', 'cr-2', 'cr-3'].forEach((c, i) => feed(s, dimImp(`i${i}`, c, 'DE')));
    let row = rowOf(drain(s), T0);
    assert.equal(cells(row, 'creative_id').has('other'), false, 'at the limit: no other yet');
    feed(s, dimImp('i3', 'cr-4', 'DE', 40));
    feed(s, dimImp('i4', 'cr-5', 'DE', 2));
    feed(s, dimImp('i5', 'cr-1', 'DE', 1)); // a named value stays named
    row = rowOf(drain(s), T0);
    assert.deepEqual(cells(row, 'creative_id'), new Map([['cr-1', [2, 101n]], ['cr-2', [1, 100n]], ['cr-3', [1, 100n]], ['other', [2, 42n]]]));
    assert.deepEqual(cells(row, 'country'), new Map([['DE', [6, 343n]]]));
    assert.deepEqual(sums(row, 'creative_id'), [6, 343n]);
  });

  it('the limit is per row: another campaign or window starts with none of its values', () => {
    const s = newState({ dimensions: DIMS, dimensionValueLimit: 1 });
    feed(s, dimImp('a', 'cr-1', 'DE'));
    feed(s, { ...dimImp('b', 'cr-2', 'DE'), campaignId: 'cmp-2' });
    feed(s, dimImp('c', 'cr-3', 'DE', 100, T0 + MIN + 1));
    const ch = drain(s);
    assert.deepEqual([...cells(rowOf(ch, T0, 'adv-1', 'cmp-2'), 'creative_id').keys()], ['cr-2']);
    assert.deepEqual([...cells(rowOf(ch, T0 + MIN), 'creative_id').keys()], ['cr-3']);
  });

  it('without dimensions a row carries no breakdowns', () => {
    const s = newState();
    feed(s, imp('a', T0 + 1));
    assert.equal(rowOf(drain(s), T0).breakdowns, undefined);
  });

  it('restores the breakdowns of the newest version and counts on from them; named values stay named', () => {
    const s = newState({ dimensions: DIMS, dimensionValueLimit: 2 });
    const stored: DimensionBreakdown[] = [
      { dimension: 'creative_id', values: [{ value: 'cr-1', impressions: 3, spendMicros: 2n ** 60n }, { value: 'cr-2', impressions: 1, spendMicros: 5n }] },
      { dimension: 'country', values: [{ value: 'DE', impressions: 4, spendMicros: 2n ** 60n + 5n }] },
      { dimension: 'device', values: [{ value: 'tv', impressions: 4, spendMicros: 2n ** 60n + 5n }] }, // no longer configured: dropped
    ];
    s.restoreRow({
      windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: P,
      impressions: 4, spendMicros: 2n ** 60n + 5n, duplicates: 0, version: 2, final: false, revised: false, breakdowns: stored,
    });
    feed(s, dimImp('n1', 'cr-2', 'FR', 10));
    feed(s, dimImp('n2', 'cr-3', 'FR', 1));
    const row = rowOf(drain(s), T0);
    assert.deepEqual(cells(row, 'creative_id'), new Map([['cr-1', [3, 2n ** 60n]], ['cr-2', [2, 15n]], ['other', [1, 1n]]]));
    assert.deepEqual(cells(row, 'country'), new Map([['DE', [4, 2n ** 60n + 5n]], ['FR', [2, 11n]]]));
    assert.equal(row.breakdowns?.some((b) => b.dimension === 'device'), false);
  });

  it('a dimension added since the row was written starts as `unknown` holding the row so far, so it still sums to the row', () => {
    const s = newState({ dimensions: DIMS });
    s.restoreRow({
      windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: P,
      impressions: 5, spendMicros: 500n, duplicates: 0, version: 1, final: false, revised: false,
    });
    feed(s, dimImp('n', 'cr-1', 'DE', 1));
    const row = rowOf(drain(s), T0);
    assert.deepEqual(cells(row, 'creative_id'), new Map([['unknown', [5, 500n]], ['cr-1', [1, 1n]]]));
    for (const d of DIMS) assert.deepEqual(sums(row, d), [6, 501n]);
  });
});

describe('window records with breakdowns', () => {
  const row: WindowRow = {
    windowStart: T0, windowEnd: T0 + MIN, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: 3,
    impressions: 3, spendMicros: 2n ** 60n, duplicates: 0, version: 1, final: false, revised: false,
    breakdowns: [{ dimension: 'country', values: [{ value: 'DE', impressions: 2, spendMicros: 2n ** 60n - 1n }, { value: 'Gerät 📱', impressions: 1, spendMicros: 1n }] }],
  };

  function record(mutate: (r: WindowCountRecord) => void): Buffer {
    const rec = JSON.parse(encodeWindowRow(row).toString()) as WindowCountRecord;
    mutate(rec);
    return Buffer.from(JSON.stringify(rec));
  }

  it('round-trip exactly through the counts topic', () => {
    const checked = checkCountRecord(encodeWindowRow(row));
    assert.equal(checked.kind, 'window');
    assert.deepEqual(decodeWindowRow(checked.record), row);
  });

  it('are poison when a dimension does not add up to the row, repeats a value, or is not a dimension', () => {
    const cases: Array<[string, (r: WindowCountRecord) => void]> = [
      ['impressions off by one', (r) => { r.breakdowns!.country![0][1] = 1; }],
      ['spend off by one micro', (r) => { r.breakdowns!.country![1][2] = 2; }],
      ['a value twice', (r) => { r.breakdowns!.country = [['DE', 2, String(2n ** 60n - 1n)], ['DE', 1, 1]]; }],
      ['an empty value', (r) => { r.breakdowns!.country![1][0] = ''; }],
      ['not a dimension', (r) => { (r.breakdowns as Record<string, unknown>).browser = r.breakdowns!.country; }],
      ['not an object', (r) => { (r as unknown as Record<string, unknown>).breakdowns = [1]; }],
      ['negative count', (r) => { r.breakdowns!.country = [['DE', 4, String(2n ** 60n - 1n)], ['x', -1, 1]]; }],
    ];
    for (const [name, mutate] of cases) assert.deepEqual(checkCountRecord(record(mutate)), { kind: 'poison', reason: 'bad_breakdowns' }, name);
  });
});
