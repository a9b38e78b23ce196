import assert from 'node:assert/strict';
import { breakdownCsv, breakdownFileName } from '../../web/src/breakdown-csv.js';
import { csvField } from '../../server/src/contracts/csv-field.js';
import type { BreakdownLine } from '../../web/src/breakdown.js';

const line = (value: string, impressions: number, spendMicros: bigint, maturity: BreakdownLine['maturity'] = 'final'): BreakdownLine => ({ value, impressions, spendMicros, maturity });

describe('web breakdown CSV: fields', () => {
  it('writes plain text as it is', () => {
    assert.equal(csvField('DE'), 'DE');
    assert.equal(csvField('creative 7'), 'creative 7');
    assert.equal(csvField('pub.example:42'), 'pub.example:42');
  });

  it('quotes commas, quotes and line breaks (RFC 4180), doubling the quotes', () => {
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('"'), '""""');
    assert.equal(csvField('x\ny'), '"x\ny"');
    assert.equal(csvField('x\r\ny'), '"x\r\ny"');
  });

  it('quotes a leading # or space and a trailing space, which readers would drop or take for a comment', () => {
    assert.equal(csvField('#1'), '"#1"');
    assert.equal(csvField(' DE'), '" DE"');
    assert.equal(csvField('DE '), '"DE "');
  });

  it('neutralises what a spreadsheet would run as a formula, as the billing export does', () => {
    assert.equal(csvField('=1+2'), "'=1+2");
    assert.equal(csvField('+49'), "'+49");
    assert.equal(csvField('-cmp-1'), "'-cmp-1");
    assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
    assert.equal(csvField('\tx'), "'\tx");
    assert.equal(csvField('\nx'), `"'\nx"`);
    assert.equal(csvField('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
    assert.equal(csvField('a=b'), 'a=b', 'only a leading trigger');
  });
});

describe('web breakdown CSV: the file', () => {
  it('has the dimension as the first header and one line per table line, in the order given', () => {
    const csv = breakdownCsv('country', [line('FR', 1, 2n, 'live'), line('DE', 3, 1_500_000n), line('unknown', 4, 0n, 'provisional')], 8);
    assert.equal(csv, [
      'country,impressions,spend,share_of_impressions_pct,maturity',
      'FR,1,0.000002,12.50,live',
      'DE,3,1.500000,37.50,final',
      'unknown,4,0.000000,50.00,provisional',
      '',
    ].join('\n'));
  });

  it('writes spend with exactly 6 decimals from the micros, exact beyond 2^53 (never through a float)', () => {
    const csv = breakdownCsv('creative_id', [line('c1', 1, 9_007_199_254_740_993n), line('c2', 1, 999_999n), line('c3', 1, 1_000_000n)], 3);
    const spends = csv.trim().split('\n').slice(1).map((l) => l.split(',')[2]);
    assert.deepEqual(spends, ['9007199254.740993', '0.999999', '1.000000']);
    const sum = spends.reduce((s, v) => s + BigInt(v.replace('.', '')), 0n);
    assert.equal(sum, 9_007_199_254_740_993n + 999_999n + 1_000_000n, 'the column sums to the micro');
  });

  it('quotes values that need it, so every line still has five fields', () => {
    const csv = breakdownCsv('publisher_id', [line('a,b', 1, 1n), line('"q"', 1, 1n), line('=cmd', 1, 1n)], 3);
    assert.deepEqual(csv.trim().split('\n').slice(1).map((l) => l.split(',').slice(-4).join(',')), ['1,0.000001,33.33,final', '1,0.000001,33.33,final', '1,0.000001,33.33,final']);
    assert.ok(csv.includes('\n"a,b",1,'));
    assert.ok(csv.includes('\n"""q""",1,'));
    assert.ok(csv.includes("\n'=cmd,1,"));
  });

  it('a table without lines is the header alone', () => {
    assert.equal(breakdownCsv('device', [], 0), 'device,impressions,spend,share_of_impressions_pct,maturity\n');
  });

  it('is named after the advertiser, campaign, dimension and days, with unsafe characters replaced', () => {
    assert.equal(breakdownFileName({ advertiserId: 'adv-1', campaignId: 'cmp:7', dimension: 'country', fromDay: '2025-11-20', toDay: '2025-11-26' }),
      'tally-adv-1-cmp_7-country-2025-11-20-2025-11-26.csv');
  });
});
