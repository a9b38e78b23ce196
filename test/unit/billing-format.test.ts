import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  csvField, csvFieldSql, csvLine, ExportEncoder, exportStatus, formatMicros, FORMULA_TRIGGER, parseUInt64, rowLineSql, type ExportMeta,
} from '../../server/src/billing/index.js';
import { frontierOf, maturityOf } from '../../server/src/ledger/index.js';
import { toDeadLetterRow } from '../../server/src/sink/index.js';

const sha = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

describe('billing: decimal formatting', () => {
  it('formats micros with exactly six decimals, without floats', () => {
    assert.equal(formatMicros(0n), '0.000000');
    assert.equal(formatMicros(1n), '0.000001');
    assert.equal(formatMicros(1250n), '0.001250');
    assert.equal(formatMicros(1_000_000n), '1.000000');
    assert.equal(formatMicros(123_456_789n), '123.456789');
    assert.equal(formatMicros(-1_500_000n), '-1.500000');
    // Beyond 2^53, where a float would round.
    assert.equal(formatMicros(18_446_744_073_709_551_615n), '18446744073709.551615');
    assert.equal(formatMicros(9_007_199_254_740_993n), '9007199254.740993');
  });
  it('parses ClickHouse UInt64 values exactly and refuses anything else', () => {
    assert.equal(parseUInt64('18446744073709551615', 'x'), 18_446_744_073_709_551_615n);
    assert.equal(parseUInt64(42, 'x'), 42n);
    for (const bad of ['18446744073709551616', '-1', '1.5', '1e3', '', ' 1', 1.5, -1, null, undefined]) {
      assert.throws(() => parseUInt64(bad, 'x'), TypeError, String(bad));
    }
  });
});

describe('billing: CSV escaping', () => {
  it('quotes only fields that need it (RFC 4180), doubling quotes', () => {
    assert.equal(csvField('adv-1'), 'adv-1');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('line\nbreak'), '"line\nbreak"');
    assert.equal(csvField('cr\r'), '"cr\r"');
    assert.equal(csvField('#not-a-comment'), '"#not-a-comment"');
    assert.equal(csvField(' padded'), '" padded"');
    assert.equal(csvField(''), '');
    assert.equal(csvLine(['a', 'b,c', '']), 'a,"b,c",\n');
  });
});

/** The ClickHouse string literals of a SQL text, decoded as ClickHouse reads them (\\ → \, \' → '). */
function sqlLiterals(sql: string): string[] {
  return [...sql.matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((m) => m[1].replace(/\\(.)/g, '$1'));
}

describe('billing: CSV fields safe to open in a spreadsheet (OWASP CSV injection)', () => {
  // Every leading character OWASP lists, each with the bytes a statement carries.
  const dangerous: Array<[string, string, string]> = [
    ['=', '=1+2', "'=1+2"],
    ['+', '+5', "'+5"],
    ['-', '-cmp-1', "'-cmp-1"],
    ['@', '@SUM(A1)', "'@SUM(A1)"],
    ['tab', '\tcmp', "'\tcmp"],
    ['CR', '\rcmp', '"\'\rcmp"'],
    ['LF', '\ncmp', '"\'\ncmp"'],
  ];

  it('prefixes a field starting with = + - @ tab CR or LF with a single quote, then quotes it when it needs it', () => {
    for (const [name, value, written] of dangerous) {
      assert.ok(FORMULA_TRIGGER.test(value), name);
      assert.equal(csvField(value), written, name);
    }
    // OWASP's examples: the quote prefix, then RFC 4180 quoting with quotes doubled.
    assert.equal(csvField('=1+2";=1+2'), '"\'=1+2"";=1+2"');
    assert.equal(csvField('=1+2\'" ;,=1+2'), '"\'=1+2\'"" ;,=1+2"');
    assert.equal(csvLine(['total', '-adv-1', '', '20']), "total,'-adv-1,,20\n");
  });

  it('leaves everything else as it was: ids, numbers, times, a trigger not in the first place', () => {
    for (const v of ['cmp-1', 'adv.1:x', 'a-', '0', '1200', '9007199254740993', '0.012500', '2025-01-01T00:00:00Z', 'final', "'-x", '']) {
      assert.equal(csvField(v), v);
    }
  });

  it('renders the same rule in the SQL of ClickHouse\'s rows, with its literals escaped right', () => {
    const sql = csvFieldSql('campaign_id');
    // As ClickHouse receives it (String.raw: every backslash below is in the SQL text).
    const neutral = String.raw`if(match(campaign_id, '^[-=+@\\t\\r\\n]'), concat('\'', campaign_id), campaign_id)`;
    assert.equal(sql, String.raw`if(match(${neutral}, '[",\\r\\n]|^[# ]| $'), concat('"', replaceAll(${neutral}, '"', '""'), '"'), ${neutral})`);
    // Decoded as ClickHouse reads them: the trigger pattern (which re2 reads as JavaScript does), the
    // prefix, the quoting pattern, the quote and its doubling.
    const [trigger, prefix, quoting] = sqlLiterals(sql);
    assert.equal(trigger, '^[-=+@\\t\\r\\n]');
    assert.equal(prefix, "'");
    assert.equal(quoting, '[",\\r\\n]|^[# ]| $');
    assert.deepEqual(sqlLiterals(sql), [trigger, prefix, quoting, '"', trigger, prefix, '"', '""', '"', trigger, prefix]);
    const re = new RegExp(trigger);
    for (const [name, value] of dangerous) assert.ok(re.test(value), `the SQL pattern matches a leading ${name}`);
    for (const v of ['cmp-1', '1200', "'-x", '']) assert.ok(!re.test(v), v);
  });

  it('applies it to the id columns of a CSV row, never to numbers, times or maturity; JSON rows carry ids as they are', () => {
    for (const grouped of [true, false]) {
      const csv = rowLineSql('csv', "'final'", grouped);
      assert.ok(csv.includes(`, ',', ${csvFieldSql('advertiser_id')}, ',', ${csvFieldSql('campaign_id')}, ',', `), csv);
      const rest = csv.replace(csvFieldSql('advertiser_id'), 'ADV').replace(csvFieldSql('campaign_id'), 'CMP');
      assert.doesNotMatch(rest, /match\(|advertiser_id|campaign_id/, 'only the id columns are neutralised');
      const [i, s, d] = grouped ? ['sum(i)', 'sum(s)', 'sum(d)'] : ['i', 's', 'd'];
      assert.ok(rest.includes(`ADV, ',', CMP, ',', toString(${i}), ',', toString(${s}), ',', `), rest);
      assert.ok(rest.endsWith(`, ',', toString(${d}), ',', 'final')`), rest);
      assert.doesNotMatch(rowLineSql('json', "'final'", grouped), /match\(/);
    }
  });
});

function meta(over: Partial<ExportMeta> = {}): ExportMeta {
  return {
    advertiserId: 'adv-1', from: Date.UTC(2025, 0, 1), to: Date.UTC(2025, 0, 2), granularity: 'hour', status: 'final',
    finalAt: Date.UTC(2025, 0, 2, 1, 1, 10),
    lateUnbillable: { events: 3n, periods: [{ periodStart: Date.UTC(2024, 11, 31, 22), events: 1n }, { periodStart: Date.UTC(2024, 11, 31, 23), events: 2n }] },
    lineage: [
      { partition: 0, source: { topic: 'impressions', firstOffset: 100, closeOffset: 5000 }, repartition: { topic: 'aggregator-repartition', firstOffset: null, closeOffset: 12 } },
      { partition: 1, source: { topic: 'impressions', firstOffset: 7, closeOffset: 900 }, repartition: { topic: 'aggregator-repartition', firstOffset: 3, closeOffset: 40 } },
    ],
    maturity: 'final',
    ...over,
  };
}

/** What ClickHouse sends for three rows WITH TOTALS, as rowLineSql renders them. */
const CH_OUTPUT: Record<'csv' | 'json', string> = {
  csv: [
    '2025-01-01T00:00:00Z,adv-1,cmp-1,10,12500,0.012500,1,final',
    '2025-01-01T00:00:00Z,adv-1,cmp-2,3,9007199254740993,9007199254.740993,0,final',
    '2025-01-01T05:00:00Z,adv-1,cmp-1,7,1,0.000001,2,final',
    '',
    '1970-01-01T00:00:00Z,,,20,9007199254753494,9007199254.753494,3,final',
    '',
  ].join('\n'),
  json: [
    '{"period_start":"2025-01-01T00:00:00Z","advertiser_id":"adv-1","campaign_id":"cmp-1","impressions":"10","spend_micros":"12500","spend":"0.012500","duplicates_removed":"1","maturity":"final"}',
    '{"period_start":"2025-01-01T00:00:00Z","advertiser_id":"adv-1","campaign_id":"cmp-2","impressions":"3","spend_micros":"9007199254740993","spend":"9007199254.740993","duplicates_removed":"0","maturity":"final"}',
    '{"period_start":"2025-01-01T05:00:00Z","advertiser_id":"adv-1","campaign_id":"cmp-1","impressions":"7","spend_micros":"1","spend":"0.000001","duplicates_removed":"2","maturity":"final"}',
    '',
    '{"period_start":"1970-01-01T00:00:00Z","advertiser_id":"","campaign_id":"","impressions":"20","spend_micros":"9007199254753494","spend":"9007199254.753494","duplicates_removed":"3","maturity":"final"}',
    '',
  ].join('\n'),
};

/** Feeds ClickHouse's output in pieces of `size` characters (the boundaries fall anywhere). */
function encode(format: 'csv' | 'json', m = meta(), size = 7, output = CH_OUTPUT[format]): { text: string; enc: ExportEncoder } {
  const enc = new ExportEncoder(format, m);
  let text = enc.begin();
  for (let i = 0; i < output.length; i += size) text += enc.feed(output.slice(i, i + size));
  text += enc.end();
  return { text, enc };
}

describe('billing: export encoder', () => {
  it('writes CSV with the comment block, exact rows, a totals row and the sha256 of everything before the trailer', () => {
    const { text, enc } = encode('csv');
    const lines = text.split('\n');
    assert.deepEqual(lines.slice(0, 12), [
      '# tally billing export', '# status: final', '# advertiser: adv-1', '# period: 2025-01-01T00:00:00Z/2025-01-02T00:00:00Z',
      '# granularity: hour', '# final_at: 2025-01-02T01:01:10.000Z',
      '# late_unbillable: 3', '# late_unbillable_from: 2024-12-31T22:00:00Z 1', '# late_unbillable_from: 2024-12-31T23:00:00Z 2',
      '# lineage: impressions/0 [100, 5000) aggregator-repartition/0 [none, 12)',
      '# lineage: impressions/1 [7, 900) aggregator-repartition/1 [3, 40)',
      'period_start,advertiser_id,campaign_id,impressions,spend_micros,spend,duplicates_removed,maturity',
    ]);
    assert.equal(lines[12], '2025-01-01T00:00:00Z,adv-1,cmp-1,10,12500,0.012500,1,final');
    assert.equal(lines[13], '2025-01-01T00:00:00Z,adv-1,cmp-2,3,9007199254740993,9007199254.740993,0,final');
    assert.equal(lines[15], 'total,adv-1,,20,9007199254753494,9007199254.753494,3,final');
    const trailer = lines[16];
    assert.match(trailer, /^# sha256: [0-9a-f]{64}$/);
    assert.equal(trailer.slice('# sha256: '.length), sha(text.slice(0, text.indexOf('# sha256: '))));
    assert.equal(enc.sha256, trailer.slice('# sha256: '.length));
    assert.equal(lines[17], '');
    assert.equal(lines.length, 18);
  });

  it('gives the same bytes however ClickHouse\'s output is cut into pieces', () => {
    for (const format of ['csv', 'json'] as const) {
      const whole = encode(format, meta(), 1_000_000).text;
      for (const size of [1, 2, 3, 5, 64]) assert.equal(encode(format, meta(), size).text, whole, `${format} in pieces of ${size}`);
      assert.equal(encode(format, meta(), 5).enc.rows, 3);
    }
  });

  it('gives the same file when the rolled-up hours come first without a totals line and their sums are added', () => {
    for (const format of ['csv', 'json'] as const) {
      const whole = encode(format).text;
      const lines = CH_OUTPUT[format].split('\n');
      // The first two rows from the roll-up query (10 + 3 impressions, 12500 + 9007199254740993 micros,
      // 1 + 0 duplicates); the third row and a totals line over it alone from the grouped query.
      const rolled = `${lines.slice(0, 2).join('\n')}\n`;
      const restTotals = format === 'csv'
        ? '1970-01-01T00:00:00Z,,,7,1,0.000001,2,final'
        : '{"period_start":"1970-01-01T00:00:00Z","advertiser_id":"","campaign_id":"","impressions":"7","spend_micros":"1","spend":"0.000001","duplicates_removed":"2","maturity":"final"}';
      const rest = `${lines[2]}\n\n${restTotals}\n`;
      for (const size of [1, 4, 1000]) {
        const enc = new ExportEncoder(format, meta());
        let text = enc.begin();
        for (const part of [rolled, rest]) for (let i = 0; i < part.length; i += size) text += enc.feed(part.slice(i, i + size));
        enc.addToTotals(13n, 9007199254753493n, 1n);
        text += enc.end();
        assert.equal(text, whole, `${format} in pieces of ${size}`);
        assert.equal(enc.rows, 3);
      }
      // Nothing left for the grouped query: an empty line and zero totals.
      const enc = new ExportEncoder(format, meta());
      let text = enc.begin() + enc.feed(`${lines.slice(0, 3).join('\n')}\n`);
      text += enc.feed(`\n${restTotals.replace(',7,1,0.000001,2,', ',0,0,0.000000,0,').replace('"7"', '"0"').replace('"1","spend":"0.000001"', '"0","spend":"0.000000"').replace('"duplicates_removed":"2"', '"duplicates_removed":"0"')}\n`);
      enc.addToTotals(20n, 9007199254753494n, 3n);
      assert.equal(text + enc.end(), whole, `${format}, every row rolled up`);
    }
  });

  it('is deterministic when final; a provisional export carries its generation time', () => {
    assert.equal(encode('csv').text, encode('csv').text);
    assert.equal(encode('json').text, encode('json').text);
    const prov = encode('csv', meta({ status: 'provisional', finalAt: undefined, generatedAt: Date.UTC(2025, 0, 1, 12) })).text;
    assert.match(prov, /^# status: provisional$/m);
    assert.match(prov, /^# generated_at: 2025-01-01T12:00:00.000Z$/m);
    assert.doesNotMatch(prov, /final_at/);
    assert.doesNotMatch(encode('csv', meta({ generatedAt: 123 })).text, /generated_at/, 'never in a final file');
  });

  it('writes JSON whose sha256 is over the canonical header, rows and totals', () => {
    const { text } = encode('json');
    const doc = JSON.parse(text) as Record<string, unknown> & { rows: unknown[]; totals: unknown; sha256: string };
    assert.equal(doc.status, 'final');
    assert.deepEqual(doc.late_unbillable, { events: '3', periods: [{ period_start: '2024-12-31T22:00:00Z', events: '1' }, { period_start: '2024-12-31T23:00:00Z', events: '2' }] });
    assert.deepEqual((doc.lineage as unknown[])[0], { partition: 0, source: { topic: 'impressions', first_offset: 100, close_offset: 5000 }, repartition: { topic: 'aggregator-repartition', first_offset: null, close_offset: 12 } });
    assert.equal(doc.rows.length, 3);
    assert.deepEqual(doc.totals, { impressions: '20', spend_micros: '9007199254753494', spend: '9007199254.753494', duplicates_removed: '3', maturity: 'final' });
    const header = {
      status: doc.status, advertiser_id: doc.advertiser_id, from: doc.from, to: doc.to, granularity: doc.granularity,
      final_at: doc.final_at, late_unbillable: doc.late_unbillable, lineage: doc.lineage,
    };
    const canonical = [header, ...doc.rows, doc.totals].map((o) => `${JSON.stringify(o)}\n`).join('');
    assert.equal(doc.sha256, sha(canonical));
  });

  it('writes an empty export with zero totals', () => {
    const empty = '\n{"period_start":"1970-01-01T00:00:00Z","advertiser_id":"","campaign_id":"","impressions":"0","spend_micros":"0","spend":"0.000000","duplicates_removed":"0","maturity":"final"}\n';
    const { text, enc } = encode('json', meta(), 4, empty);
    const doc = JSON.parse(text) as { rows: unknown[]; totals: { impressions: string } };
    assert.deepEqual(doc.rows, []);
    assert.equal(doc.totals.impressions, '0');
    assert.equal(enc.rows, 0);
  });

  it('writes ids starting with - as \'-… in rows and totals; the comment block keeps them inside its # cell; the digest covers those bytes', () => {
    const output = [
      "2025-01-01T00:00:00Z,'-adv-1,'-cmp-1,10,12500,0.012500,1,final",
      "2025-01-01T00:00:00Z,'-adv-1,cmp-2,3,7,0.000007,0,final",
      '',
      '1970-01-01T00:00:00Z,,,13,12507,0.012507,1,final',
      '',
    ].join('\n');
    const { text, enc } = encode('csv', meta({ advertiserId: '-adv-1' }), 5, output);
    const lines = text.split('\n');
    assert.equal(lines[2], '# advertiser: -adv-1');
    assert.equal(lines[12], "2025-01-01T00:00:00Z,'-adv-1,'-cmp-1,10,12500,0.012500,1,final");
    assert.equal(lines[14], "total,'-adv-1,,13,12507,0.012507,1,final");
    assert.equal(enc.sha256, sha(text.slice(0, text.indexOf('# sha256: '))));
    // No cell of the file, split at commas or semicolons (some locales' separator), starts a formula.
    for (const line of lines) for (const cell of line.split(/[,;]/)) assert.doesNotMatch(cell, /^[-=+@\t\r]/, line);
  });

  it('refuses an advertiser id that could start a cell of its own in the comment block', () => {
    for (const bad of ['adv,=1+2', 'adv\n=1+2', 'adv;=1+2', 'adv"x']) {
      assert.throws(() => new ExportEncoder('csv', meta({ advertiserId: bad })).begin(), /not a contract id/, bad);
    }
  });

  it('refuses output that ends without its totals (ClickHouse failed mid-stream)', () => {
    const enc = new ExportEncoder('csv', meta());
    enc.begin();
    enc.feed('2025-01-01T00:00:00Z,adv-1,cmp-1,10,12500,0.012500,1,final\nCode: 241. DB::Exception: Memory limit');
    assert.throws(() => enc.end(), /without its totals/);
  });
});

describe('billing: status and maturity from the ledger frontier', () => {
  const H = Date.UTC(2025, 0, 1, 10);
  const frontier = (lastClosed: number[], watermarks: number[]) => frontierOf([
    ...lastClosed.map((v, p) => ({ kind: 'close', p, v: v / 1000 })),
    ...watermarks.map((v, p) => ({ kind: 'watermark', p, v })),
  ], 4);
  it('a period is final once every partition closed it or a later one', () => {
    const f = frontier([H, H + 3_600_000, H, H], [H + 7_200_000, H + 7_200_000, H + 7_200_000, H + 7_200_000]);
    assert.equal(f.finalBefore, H + 3_600_000);
    assert.equal(exportStatus(f, H + 3_600_000), 'final');
    assert.equal(exportStatus(f, H + 3_600_001), 'provisional');
    assert.equal(frontier([H, H, H], [H, H, H, H]).finalBefore, null, 'a partition that closed nothing');
    assert.equal(exportStatus(frontier([H, H, H], [H, H, H, H]), 0), 'provisional');
  });
  it('rows are final in the ledger, provisional once their windows closed, live otherwise', () => {
    const f = frontier([H, H, H, H], [H + 7_200_000 + 30_000, H + 7_200_000 + 30_000, H + 7_200_000 + 30_000, H + 7_200_000 + 30_000]);
    assert.equal(maturityOf(H, 3_600_000, f, 30_000), 'final');
    assert.equal(maturityOf(H + 3_600_000, 3_600_000, f, 30_000), 'provisional');
    assert.equal(maturityOf(H + 3_600_000, 3_600_000, f, 30_001), 'live');
    assert.equal(maturityOf(H, 86_400_000, f, 30_000), 'live', 'a day is as settled as its least settled hour');
  });
});

describe('dead-letter rows', () => {
  const headers: Array<Record<string, string>> = [{ reason: 'too_late' }, { detail: 'too old' }, { 'source-topic': 'impressions' }, { 'source-partition': '3' }, { 'source-offset': '1234' }];
  it('keys a dead letter by its source coordinates and reads advertiser and event time from a valid value', () => {
    const value = Buffer.from(JSON.stringify({ impression_id: 'i-1', ts: 1_764_150_000_123, advertiser_id: 'adv-9', campaign_id: 'c', cost_micros: 5 }));
    assert.deepEqual(toDeadLetterRow({ topic: 'dlq', partition: 1, offset: 7, value, headers }), {
      reason: 'too_late', detail: 'too old', source_topic: 'impressions', source_partition: 3, source_offset: 1234,
      dlq_partition: 1, dlq_offset: 7, advertiser_id: 'adv-9', event_ts: 1_764_150_000, arrival_period: 0,
    });
  });
  it('falls back to empty advertiser, zero time and the DLQ coordinates', () => {
    const row = toDeadLetterRow({ topic: 'dlq', partition: 2, offset: 9, value: Buffer.from('{not json'), headers: [{ reason: 'bad_json' }] });
    assert.equal(row.advertiser_id, '');
    assert.equal(row.event_ts, 0);
    assert.deepEqual([row.source_topic, row.source_partition, row.source_offset], ['dlq', 2, 9]);
    const bad = toDeadLetterRow({ topic: 'dlq', partition: 0, offset: 1, value: Buffer.from(JSON.stringify({ advertiser_id: 'adv 1!', ts: 'yesterday' })), headers });
    assert.equal(bad.advertiser_id, '');
    assert.equal(bad.event_ts, 0);
  });
});
