import assert from 'node:assert/strict';
import { breakdownCsv, breakdownFileName, campaignCsv, campaignFileName } from '../../web/src/table-csv.js';
import { csvField } from '../../server/src/contracts/csv-field.js';
import type { BreakdownLine } from '../../web/src/breakdown.js';
import type { CampaignTotals } from '../../web/src/live-aggregates.js';

const line = (value: string, impressions: number, spendMicros: bigint, maturity: BreakdownLine['maturity'] = 'final'): BreakdownLine => ({ value, impressions, spendMicros, maturity });
const campaign = (advertiserId: string, campaignId: string, impressions: number, spendMicros: bigint, maturity: CampaignTotals['maturity'] = 'final'): CampaignTotals => ({
  advertiserId, campaignId, impressions, spendMicros, maturity, duplicates: 7, lastWindow: 0,
});

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

describe('web campaign table CSV', () => {
  it('one line per campaign in the order given: advertiser, campaign, impressions, exact spend and CPM, maturity', () => {
    const csv = campaignCsv([campaign('adv-1', 'cmp-2', 3, 1_000_000n, 'live'), campaign('adv-1', 'cmp-1', 1200, 1_500_000n, 'provisional')]);
    assert.equal(csv, [
      'advertiser_id,campaign_id,impressions,spend,cpm,maturity',
      'adv-1,cmp-2,3,1.000000,333.333333,live',
      'adv-1,cmp-1,1200,1.500000,1.250000,provisional',
      '',
    ].join('\n'));
  });

  it('CPM as the table shows it (half up to the micro), empty without impressions', () => {
    const csv = campaignCsv([campaign('a', 'c1', 3, 2_000_000n), campaign('a', 'c2', 0, 0n)]);
    assert.deepEqual(csv.trim().split('\n').slice(1).map((l) => l.split(',')[4]), ['666.666667', '']);
  });

  it('spend sums to the micro beyond 2^53', () => {
    const csv = campaignCsv([campaign('a', 'c1', 1, 9_007_199_254_740_993n), campaign('a', 'c2', 2, 999_999n)]);
    const sum = csv.trim().split('\n').slice(1).reduce((s, l) => s + BigInt(l.split(',')[3].replace('.', '')), 0n);
    assert.equal(sum, 9_007_199_254_740_993n + 999_999n);
  });

  it('ids go through the spreadsheet rule, so every line keeps six fields', () => {
    const csv = campaignCsv([campaign('-adv', '=cmp,1', 1, 1n)]);
    assert.equal(csv.split('\n')[1], `'-adv,"'=cmp,1",1,0.000001,0.001000,final`);
  });

  it('a table without campaigns is the header alone', () => {
    assert.equal(campaignCsv([]), 'advertiser_id,campaign_id,impressions,spend,cpm,maturity\n');
  });

  it('is named after the advertiser (none for all advertisers) and the days, with unsafe characters replaced', () => {
    assert.equal(campaignFileName({ advertiserId: 'adv:1', fromDay: '2025-11-20', toDay: '2025-11-26' }), 'tally-adv_1-campaigns-2025-11-20-2025-11-26.csv');
    assert.equal(campaignFileName({ advertiserId: null, fromDay: '2025-11-26', toDay: '2025-11-26' }), 'tally-campaigns-2025-11-26-2025-11-26.csv');
  });
});
