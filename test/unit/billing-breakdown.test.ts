import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  BillingParamError, breakdownLineSql, breakdownSql, csvFieldSql, ExportEncoder, exportFileName, parseExportParams, type ExportMeta, type ExportQuery,
} from '../../server/src/billing/index.js';
import type { Dimension } from '../../server/src/contracts/dimensions.js';
import { periodSourcesSql } from '../../server/src/ledger/index.js';

const sha = (s: string) => crypto.createHash('sha256').update(s).digest('hex');
const COUNTED: Dimension[] = ['creative_id', 'country', 'device'];
const base = { advertiser_id: 'adv-1', from: '2025-01-01', to: '2025-01-02' };

function paramError(query: Record<string, unknown>, counted: readonly Dimension[] = COUNTED): string {
  try {
    parseExportParams(query, counted);
  } catch (err) {
    assert.ok(err instanceof BillingParamError, String(err));
    assert.equal(err.parameter, 'breakdown');
    return err.message;
  }
  assert.fail(`accepted ${JSON.stringify(query)}`);
}

describe('billing: the breakdown parameter', () => {
  it('takes one dimension or a comma list of counted ones, in the order given; absent, no breakdown', () => {
    assert.deepEqual(parseExportParams({ ...base, breakdown: 'country' }, COUNTED).breakdown, ['country']);
    assert.deepEqual(parseExportParams({ ...base, breakdown: 'device,country' }, COUNTED).breakdown, ['device', 'country']);
    assert.deepEqual(parseExportParams({ ...base, breakdown: 'country, creative_id' }, COUNTED).breakdown, ['country', 'creative_id']);
    assert.equal('breakdown' in parseExportParams(base, COUNTED), false);
  });

  it('refuses, naming the parameter: not a dimension, not counted here, twice, empty, repeated, nothing counted', () => {
    for (const bad of ['', 'nope', 'country,', ',country', 'Country', "country'", 'country;device', 'campaign_id', 'country device']) {
      assert.match(paramError({ ...base, breakdown: bad }), /^breakdown must be a dimension or several separated by commas; choose from creative_id, country, device \(TALLY_DIMENSIONS\)$/, bad);
    }
    assert.equal(paramError({ ...base, breakdown: 'publisher_id' }), 'breakdown names publisher_id, which is not counted here; choose from creative_id, country, device (TALLY_DIMENSIONS)');
    assert.equal(paramError({ ...base, breakdown: 'country,device,country' }), 'breakdown names country twice');
    assert.match(paramError({ ...base, breakdown: ['country', 'device'] }), /^breakdown must be given once/);
    assert.equal(paramError({ ...base, breakdown: 'country' }, []), 'breakdown is not available: no dimension is counted here (TALLY_DIMENSIONS is empty)');
    assert.throws(() => parseExportParams({ ...base, breakdown: 'country' }), /breakdown is not available/, 'none counted unless the caller says which');
  });

  it('names the file after it', () => {
    const q = parseExportParams({ ...base, breakdown: 'country,device', format: 'json' }, COUNTED);
    assert.equal(exportFileName(q), 'tally-billing-adv-1-2025-01-01T000000Z-2025-01-02T000000Z-day-by-country-device.json');
    assert.equal(exportFileName(parseExportParams(base, COUNTED)), 'tally-billing-adv-1-2025-01-01T000000Z-2025-01-02T000000Z-day.csv');
  });
});

/** The ClickHouse string literals of a SQL text, decoded as ClickHouse reads them (\\ → \, \' → '). */
function sqlLiterals(sql: string): string[] {
  return [...sql.matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((m) => m[1].replace(/\\(.)/g, '$1'));
}

describe('billing: the breakdown section\'s SQL', () => {
  const H = Date.UTC(2025, 0, 1, 10);
  const q: ExportQuery = { advertiserId: 'adv-1', from: H, to: H + 5 * 3_600_000, granularity: 'hour', format: 'csv' };
  const frontier = { finalBefore: H + 2 * 3_600_000, rolledBefore: H + 3_600_000, minWatermark: H + 4 * 3_600_000 };

  it('reads the values of the range\'s windows FINAL beside the statement\'s own rows, and fails on a final row its values exceed', () => {
    const sql = breakdownSql('tally', q, ['device', 'country'], frontier, 30_000);
    const [from, to] = [H / 1000, (H + 5 * 3_600_000) / 1000];
    assert.ok(sql.includes(`FROM tally.impression_breakdowns FINAL WHERE advertiser_id = 'adv-1' AND dimension IN ('device', 'country') AND window_start >= toDateTime(${from}) AND window_start < toDateTime(${to})`), sql);
    assert.ok(sql.includes('SELECT intDiv(toUInt32(window_start), 3600) * 3600 AS period_s'), 'whole UTC hours by integer arithmetic');
    // The rows: the statement's three sources with the same frontier (rolled-up, ledger, windows).
    assert.ok(sql.includes(`arrayJoin(['device', 'country']) AS dimension, i AS ri, s AS rs, materialize(toUInt64(0)) AS vi, materialize(toUInt64(0)) AS vs FROM (${periodSourcesSql('tally', { advertiserId: 'adv-1', campaignId: null, from: H, to: H + 5 * 3_600_000, periodMs: 3_600_000 }, frontier)})`), sql);
    // What the rows hold beyond their values is `unknown`; a final row exceeded fails the query.
    assert.ok(sql.includes("materialize('unknown') AS value, toUInt64(ri - vi) AS i, toUInt64(rs - vs) AS s"), sql);
    assert.ok(sql.includes(`WHERE throwIf((period_s + 3600) * 1000 <= ${H + 2 * 3_600_000} AND (vi > ri OR vs > rs)) = 0 AND ri >= vi AND rs >= vs AND (ri > vi OR rs > vs)`), sql);
    assert.ok(sql.endsWith("GROUP BY period_s, advertiser_id, campaign_id, dimension, value WITH TOTALS ORDER BY period_s, campaign_id, indexOf(['device', 'country'], dimension), sum(i) DESC, value"), sql);
    assert.ok(sql.includes(`multiIf((period_s + 3600) * 1000 <= ${H + 2 * 3_600_000}, 'final', (period_s + 3600) * 1000 + 30000 <= ${H + 4 * 3_600_000}, 'provisional', 'live')`), 'each line says its row\'s maturity');
    assert.match(breakdownSql('tally', { ...q, granularity: 'day' }, ['country'], frontier, 0), /intDiv\(toUInt32\(window_start\), 86400\) \* 86400 AS period_s/);
  });

  it('lets nothing unchecked reach SQL', () => {
    assert.throws(() => breakdownSql('tally', { ...q, advertiserId: "adv-1' OR 1=1" }, ['country'], frontier, 0), /not a valid id/);
    assert.throws(() => breakdownSql('tally', q, ["country') OR 1=1 --" as Dimension], frontier, 0), /not a dimension/);
    assert.throws(() => breakdownSql('tally', q, [], frontier, 0), /at least one dimension/);
    assert.throws(() => breakdownSql('tally; DROP', q, ['country'], frontier, 0), /not a valid identifier/);
  });

  it('renders a line: CSV text fields (ids, value) by the formula rule, JSON values escaped as JSON.stringify does', () => {
    const csv = breakdownLineSql('csv', "'final'");
    assert.ok(csv.includes(`, ',', ${csvFieldSql('advertiser_id')}, ',', ${csvFieldSql('campaign_id')}, ',', dimension, ',', ${csvFieldSql('value')}, ',', toString(sum(i)), ',', toString(sum(s)), ',', `), csv);
    const json = breakdownLineSql('json', "'final'");
    assert.doesNotMatch(json, /match\(/);
    const escape = String.raw`replaceAll(replaceAll(value, '\\', '\\\\'), '"', '\\"')`;
    assert.ok(json.includes(`',"value":"', ${escape}, '"'`), json);
    // As ClickHouse reads the literals: \ → \\, then " → \".
    assert.deepEqual(sqlLiterals(escape), ['\\', '\\\\', '"', '\\"']);
  });
});

function meta(over: Partial<ExportMeta> = {}): ExportMeta {
  return {
    advertiserId: 'adv-1', from: Date.UTC(2025, 0, 1), to: Date.UTC(2025, 0, 2), granularity: 'hour', breakdown: ['country', 'device'], status: 'final',
    finalAt: Date.UTC(2025, 0, 2, 1, 1, 10), lateUnbillable: { events: 0n, periods: [] },
    lineage: [{ partition: 0, source: { topic: 'impressions', firstOffset: 1, closeOffset: 50 }, repartition: { topic: 'aggregator-repartition', firstOffset: null, closeOffset: 0 } }],
    maturity: 'final',
    ...over,
  };
}

const T0 = '2025-01-01T00:00:00Z';
const T5 = '2025-01-01T05:00:00Z';
const AWKWARD = 'a "b"\\c, =d';

/** What ClickHouse sends for the rows (WITH TOTALS) and then for the section (WITH TOTALS), per format. */
const CH_OUTPUT: Record<'csv' | 'json', { rows: string; section: string }> = {
  csv: {
    rows: [
      `${T0},adv-1,cmp-1,10,12500,0.012500,1,final`,
      `${T0},adv-1,cmp-2,3,9007199254740993,9007199254.740993,0,final`,
      `${T5},adv-1,cmp-1,7,1,0.000001,2,final`,
      '',
      '1970-01-01T00:00:00Z,,,20,9007199254753494,9007199254.753494,3,final',
      '',
    ].join('\n'),
    section: [
      `${T0},adv-1,cmp-1,country,DE,6,10000,0.010000,final`,
      `${T0},adv-1,cmp-1,country,'=FR,4,2500,0.002500,final`,
      `${T0},adv-1,cmp-1,device,mobile,10,12500,0.012500,final`,
      `${T0},adv-1,cmp-2,country,unknown,3,9007199254740993,9007199254.740993,final`,
      `${T0},adv-1,cmp-2,device,ctv,2,9007199254740990,9007199254.740990,final`,
      `${T0},adv-1,cmp-2,device,"${AWKWARD.replaceAll('"', '""')}",1,3,0.000003,final`,
      `${T5},adv-1,cmp-1,country,DE,7,1,0.000001,final`,
      `${T5},adv-1,cmp-1,device,mobile,7,1,0.000001,final`,
      '',
      '1970-01-01T00:00:00Z,,,,,40,18014398509506988,18014398509.506988,final',
      '',
    ].join('\n'),
  },
  json: {
    rows: [
      `{"period_start":"${T0}","advertiser_id":"adv-1","campaign_id":"cmp-1","impressions":"10","spend_micros":"12500","spend":"0.012500","duplicates_removed":"1","maturity":"final"}`,
      `{"period_start":"${T0}","advertiser_id":"adv-1","campaign_id":"cmp-2","impressions":"3","spend_micros":"9007199254740993","spend":"9007199254.740993","duplicates_removed":"0","maturity":"final"}`,
      `{"period_start":"${T5}","advertiser_id":"adv-1","campaign_id":"cmp-1","impressions":"7","spend_micros":"1","spend":"0.000001","duplicates_removed":"2","maturity":"final"}`,
      '',
      '{"period_start":"1970-01-01T00:00:00Z","advertiser_id":"","campaign_id":"","impressions":"20","spend_micros":"9007199254753494","spend":"9007199254.753494","duplicates_removed":"3","maturity":"final"}',
      '',
    ].join('\n'),
    section: [
      [T0, 'cmp-1', 'country', 'DE', '6', '10000', '0.010000'], [T0, 'cmp-1', 'country', '=FR', '4', '2500', '0.002500'],
      [T0, 'cmp-1', 'device', 'mobile', '10', '12500', '0.012500'], [T0, 'cmp-2', 'country', 'unknown', '3', '9007199254740993', '9007199254.740993'],
      [T0, 'cmp-2', 'device', 'ctv', '2', '9007199254740990', '9007199254.740990'], [T0, 'cmp-2', 'device', AWKWARD, '1', '3', '0.000003'],
      [T5, 'cmp-1', 'country', 'DE', '7', '1', '0.000001'], [T5, 'cmp-1', 'device', 'mobile', '7', '1', '0.000001'],
      ['1970-01-01T00:00:00Z', '', '', '', '40', '18014398509506988', '18014398509.506988'],
    ].map(([period, campaign, dimension, value, i, s, spend]) => JSON.stringify({
      period_start: period, advertiser_id: campaign === '' ? '' : 'adv-1', campaign_id: campaign, dimension, value, impressions: i, spend_micros: s, spend, maturity: 'final',
    })).map((line, i, all) => (i === all.length - 1 ? `\n${line}\n` : `${line}\n`)).join(''),
  },
};

/** Feeds the rows, then (if asked for) the section, in pieces of `size` characters. */
function encode(format: 'csv' | 'json', m = meta(), size = 7, section = CH_OUTPUT[format].section): { text: string; enc: ExportEncoder } {
  const enc = new ExportEncoder(format, m);
  let text = enc.begin();
  const feed = (output: string) => {
    for (let i = 0; i < output.length; i += size) text += enc.feed(output.slice(i, i + size));
  };
  feed(CH_OUTPUT[format].rows);
  if (m.breakdown !== undefined) {
    text += enc.beginBreakdowns();
    feed(section);
  }
  text += enc.end();
  return { text, enc };
}

type Numbers = { impressions: bigint; spend: bigint };

/** Per (period, campaign, dimension): each row's numbers and its values' sums; they must be equal. */
function assertValuesSumToRows(rows: Array<[string, string, string, string]>, values: Array<[string, string, string, string, string]>, dimensions: readonly string[]): void {
  const sums = new Map<string, Numbers>();
  for (const [period, campaign, dimension, impressions, spend] of values) {
    const key = `${period}|${campaign}|${dimension}`;
    const s = sums.get(key) ?? { impressions: 0n, spend: 0n };
    sums.set(key, { impressions: s.impressions + BigInt(impressions), spend: s.spend + BigInt(spend) });
  }
  for (const [period, campaign, impressions, spend] of rows) {
    for (const d of dimensions) {
      assert.deepEqual(sums.get(`${period}|${campaign}|${d}`), { impressions: BigInt(impressions), spend: BigInt(spend) }, `${period} ${campaign} ${d}`);
      sums.delete(`${period}|${campaign}|${d}`);
    }
  }
  assert.deepEqual([...sums.keys()], [], 'no values without a row');
}

describe('billing: the breakdown section of a statement', () => {
  it('CSV: the statement as without it, then a "# section: breakdowns" block whose values sum to each row, all under the digest', () => {
    const { text, enc } = encode('csv');
    const lines = text.split('\n');
    assert.equal(lines[5], '# breakdown: country,device', 'the header names the dimensions');
    const plain = encode('csv', meta({ breakdown: undefined })).text;
    const rowsEnd = text.indexOf('# section: breakdowns\n');
    assert.equal(text.slice(0, rowsEnd).replace('# breakdown: country,device\n', ''), plain.slice(0, plain.indexOf('# sha256: ')),
      'header (but its breakdown line), rows and totals are byte for byte the statement without a breakdown');
    const section = text.slice(rowsEnd, text.indexOf('# sha256: ')).split('\n');
    assert.deepEqual(section.slice(0, 2), ['# section: breakdowns', 'period_start,advertiser_id,campaign_id,dimension,value,impressions,spend_micros,spend,maturity']);
    assert.deepEqual(section.slice(2), [...CH_OUTPUT.csv.section.split('\n\n')[0].split('\n'), ''], 'ClickHouse\'s lines as they are, without its totals line');
    assert.equal(enc.rows, 3);
    assert.equal(enc.breakdownRows, 8);
    assert.equal(text.slice(text.indexOf('# sha256: ') + 10, -1), sha(text.slice(0, text.indexOf('# sha256: '))));
    assert.equal(enc.sha256, sha(text.slice(0, text.indexOf('# sha256: '))));
    const rows = lines.slice(10, 13).map((l) => l.split(','));
    assert.equal(lines[13], 'total,adv-1,,20,9007199254753494,9007199254.753494,3,final');
    // Counted from the end: a value may hold commas (quoted).
    const values = section.slice(2, -1).map((l) => {
      const f = l.split(',');
      return [f[0], f[2], f[3], f[f.length - 4], f[f.length - 3]] as [string, string, string, string, string];
    });
    assertValuesSumToRows(rows.map((r) => [r[0], r[2], r[3], r[4]]), values, ['country', 'device']);
  });

  it('JSON: a "breakdowns" member after the totals, values as written, in the canonical digest, summing to each row', () => {
    const { text } = encode('json');
    const doc = JSON.parse(text) as Record<string, unknown> & {
      rows: Array<Record<string, string>>; totals: unknown; breakdowns: Array<Record<string, string>>; sha256: string; breakdown: string[];
    };
    assert.deepEqual(Object.keys(doc), ['status', 'advertiser_id', 'from', 'to', 'granularity', 'breakdown', 'final_at', 'late_unbillable', 'lineage', 'rows', 'totals', 'breakdowns', 'sha256']);
    assert.deepEqual(doc.breakdown, ['country', 'device']);
    assert.equal(doc.breakdowns.length, 8);
    assert.equal(doc.breakdowns[5].value, AWKWARD, 'quotes, backslash, comma and a leading = survive as they are in JSON');
    assert.equal(doc.breakdowns[1].value, '=FR');
    const header = {
      status: doc.status, advertiser_id: doc.advertiser_id, from: doc.from, to: doc.to, granularity: doc.granularity, breakdown: doc.breakdown,
      final_at: doc.final_at, late_unbillable: doc.late_unbillable, lineage: doc.lineage,
    };
    const canonical = [header, ...doc.rows, doc.totals, ...doc.breakdowns].map((o) => `${JSON.stringify(o)}\n`).join('');
    assert.equal(doc.sha256, sha(canonical));
    assertValuesSumToRows(doc.rows.map((r) => [r.period_start, r.campaign_id, r.impressions, r.spend_micros]),
      doc.breakdowns.map((b) => [b.period_start, b.campaign_id, b.dimension, b.impressions, b.spend_micros]), doc.breakdown);
  });

  it('gives the same bytes however ClickHouse\'s output is cut into pieces', () => {
    for (const format of ['csv', 'json'] as const) {
      const whole = encode(format, meta(), 1_000_000).text;
      for (const size of [1, 2, 3, 5, 64]) assert.equal(encode(format, meta(), size).text, whole, `${format} in pieces of ${size}`);
      assert.equal(encode(format, meta(), 1).enc.breakdownRows, 8);
    }
  });

  it('writes an empty section when there are no values', () => {
    const emptyCsv = '\n1970-01-01T00:00:00Z,,,,,0,0,0.000000,final\n';
    const csv = encode('csv', meta(), 3, emptyCsv);
    assert.ok(csv.text.includes('# section: breakdowns\nperiod_start,advertiser_id,campaign_id,dimension,value,impressions,spend_micros,spend,maturity\n# sha256: '), csv.text);
    assert.equal(csv.enc.breakdownRows, 0);
    const emptyJson = '\n{"period_start":"1970-01-01T00:00:00Z","advertiser_id":"","campaign_id":"","dimension":"","value":"","impressions":"0","spend_micros":"0","spend":"0.000000","maturity":"final"}\n';
    const json = JSON.parse(encode('json', meta(), 3, emptyJson).text) as { breakdowns: unknown[] };
    assert.deepEqual(json.breakdowns, []);
  });

  it('refuses output that is incomplete: a section without its totals line, a section asked for and never begun', () => {
    const cut = new ExportEncoder('csv', meta());
    cut.begin();
    cut.feed(CH_OUTPUT.csv.rows);
    cut.beginBreakdowns();
    cut.feed(`${T0},adv-1,cmp-1,country,DE,6,10000,0.010000,final\nCode: 241. DB::Exception: Memory limit`);
    assert.throws(() => cut.end(), /breakdown query ended without its totals line/);
    const never = new ExportEncoder('json', meta());
    never.begin();
    never.feed(CH_OUTPUT.json.rows);
    assert.throws(() => never.end(), /breakdown section never began/);
    const none = new ExportEncoder('csv', meta({ breakdown: undefined }));
    none.begin();
    none.feed(CH_OUTPUT.csv.rows);
    assert.throws(() => none.beginBreakdowns(), /no breakdown asked for/);
    const early = new ExportEncoder('csv', meta());
    early.begin();
    early.feed(`${T0},adv-1,cmp-1,10,12500,0.012500,1,final\n`);
    assert.throws(() => early.beginBreakdowns(), /without its totals line/);
  });
});
