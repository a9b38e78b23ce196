/**
 * Billing exports of ledger rows written straight into ClickHouse (no pipeline): CSV statements
 * safe in a spreadsheet, and a month of hourly rows × 1000 campaigns streamed with bounded memory.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { formatMicros, isoUtc } from '../../server/src/billing/index.js';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { createSandbox, type Sandbox } from '../kit/harness.js';
import { BillingServer, DAY, exportUrl, HOUR, parseCsv } from './billing-fixtures.js';

describe('billing export of inserted ledger rows (real ClickHouse)', function () {
  this.timeout(600_000);
  let sb: Sandbox | undefined;
  let ch: ClickHouseClient | undefined;
  let server: BillingServer | undefined;

  afterEach(async function () {
    this.timeout(120_000);
    await server?.close();
    await ch?.close();
    await sb?.cleanup();
    server = undefined;
    ch = undefined;
    sb = undefined;
  });

  it('CSV statements are safe in a spreadsheet: ids starting with - are written \'-…, in rolled-up and ledger rows and totals; the digest verifies; JSON as it is', async () => {
    sb = await createSandbox('billcsvinj');
    const { config } = sb;
    ch = createClickHouse(config);
    const db = config.clickhouse.database;
    // Ids any ingest token may write (^[A-Za-z0-9._:-]{1,128}$): an advertiser and a campaign starting with '-'.
    const adv = '-inj-adv';
    const from = Date.UTC(2025, 0, 1);
    const to = from + 2 * HOUR;
    const sec = (ms: number) => ms / 1000;
    // Two final hours: the first rolled up (billing_statement + final_periods), the second still in
    // the ledger, so both of the statement's queries render these ids.
    const ledger: Array<[number, string, number, number, number, number]> = [ // period, campaign, partition, impressions, micros, duplicates
      [from, '-cmp-1', 0, 10, 12_500, 1], [from, 'cmp-2', 1, 3, 7, 0], [from + HOUR, '-cmp-1', 2, 7, 1, 2],
    ];
    await ch.command({
      query: `INSERT INTO ${db}.billing_ledger (period_start, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, closed_at) VALUES `
        + ledger.map(([p, c, part, i, s, d]) => `(toDateTime(${sec(p)}), '${adv}', '${c}', ${part}, ${i}, ${s}, ${d}, toDateTime(${sec(to)}))`).join(', '),
    });
    await ch.command({
      query: `INSERT INTO ${db}.billing_statement (period_start, advertiser_id, campaign_id, impressions, spend_micros, duplicates, rollup_id) VALUES `
        + ledger.filter(([p]) => p === from).map(([p, c, , i, s, d]) => `(toDateTime(${sec(p)}), '${adv}', '${c}', ${i}, ${s}, ${d}, 1)`).join(', '),
    });
    await ch.command({ query: `INSERT INTO ${db}.final_periods (period_start, final_at, statement_rows, rollup_id) VALUES (toDateTime(${sec(from)}), toDateTime(${sec(to)}), 2, 1)` });
    await ch.command({
      query: `INSERT INTO ${db}.period_closes (period_start, source_partition, closed_at, watermark_ms, ledger_rows, source_topic, source_first_offset, source_close_offset, repartition_topic, repartition_first_offset, repartition_close_offset) VALUES `
        + Array.from({ length: config.partitions }, (_, p) => `(toDateTime(${sec(to - HOUR)}), ${p}, toDateTime(${sec(to) + 60}), ${to + HOUR}, 1, 'impressions', 0, 10, 'aggregator-repartition', -1, 0)`).join(', '),
    });
    const srv = await BillingServer.start(config, ch, { admin: { tokenId: 'a', name: 'admin', scopes: ['admin'] } });
    server = srv;
    const q = { advertiser_id: adv, from: isoUtc(from), to: isoUtc(to), granularity: 'hour' };

    const res = await srv.get(exportUrl({ ...q, format: 'csv' }), 'admin');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.headers['x-tally-export-status'], 'final');
    const text = res.body.toString('utf8');
    const csv = parseCsv(text); // also checks the trailer: the sha256 of the bytes served, before it
    assert.equal(res.trailers['x-tally-export-sha256'], csv.sha256, 'HTTP trailer = file trailer');
    assert.ok(text.includes(`\n${isoUtc(from)},'-inj-adv,'-cmp-1,10,12500,0.012500,1,final\n`), text);
    assert.deepEqual(csv.rows, [
      [isoUtc(from), "'-inj-adv", "'-cmp-1", '10', '12500', '0.012500', '1', 'final'],
      [isoUtc(from), "'-inj-adv", 'cmp-2', '3', '7', '0.000007', '0', 'final'],
      [isoUtc(from + HOUR), "'-inj-adv", "'-cmp-1", '7', '1', '0.000001', '2', 'final'],
    ]);
    assert.deepEqual(csv.total, ['total', "'-inj-adv", '', '20', '12508', '0.012508', '3', 'final'], 'totals: rolled-up sums added to the ledger\'s');
    assert.equal(csv.meta.advertiser, adv, 'inside the comment cell (it starts with #) the id is as it is');
    // No cell of any line, split at commas or semicolons (the separator of some locales), starts a formula.
    for (const line of text.split('\n')) {
      for (const cell of line.split(/[,;]/)) assert.doesNotMatch(cell, /^[-=+@\t\r]/, line);
    }
    assert.ok((await srv.get(exportUrl({ ...q, format: 'csv' }), 'admin')).body.equals(res.body), 'a final export is byte-identical on repeat');

    // JSON values are JSON strings: the ids as they are, and the canonical digest verifies.
    const jres = await srv.get(exportUrl({ ...q, format: 'json' }), 'admin');
    assert.equal(jres.status, 200, jres.body.toString());
    const doc = JSON.parse(jres.body.toString('utf8')) as Record<string, unknown> & { rows: Array<Record<string, string>>; totals: Record<string, string>; sha256: string };
    assert.equal(doc.advertiser_id, adv);
    assert.deepEqual(doc.rows.map((r) => [r.advertiser_id, r.campaign_id, r.impressions]), [[adv, '-cmp-1', '10'], [adv, 'cmp-2', '3'], [adv, '-cmp-1', '7']]);
    const header = {
      status: doc.status, advertiser_id: doc.advertiser_id, from: doc.from, to: doc.to, granularity: doc.granularity,
      final_at: doc.final_at, late_unbillable: doc.late_unbillable, lineage: doc.lineage,
    };
    const canonical = [header, ...doc.rows, doc.totals].map((o) => `${JSON.stringify(o)}\n`).join('');
    assert.equal(doc.sha256, crypto.createHash('sha256').update(canonical).digest('hex'));
    assert.equal(jres.trailers['x-tally-export-sha256'], doc.sha256);
  });

  it('streams a month of hourly rows × 1000 campaigns (720k rows) from the ledger with bounded memory', async () => {
    sb = await createSandbox('billbig');
    const { config } = sb;
    ch = createClickHouse(config, { requestTimeoutMs: 60_000 });
    const db = config.clickhouse.database;
    const from = Date.UTC(2025, 0, 1);
    const to = from + 30 * DAY;
    const base = from / 1000;
    // A closed month: its ledger rows (each (hour, campaign) in one partition) and every partition's close of its last hour.
    await ch.command({
      query: `INSERT INTO ${db}.billing_ledger (period_start, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, closed_at) `
        + `SELECT toDateTime(${base} + intDiv(number, 1000) * 3600), 'big-adv', `
        + "concat('cmp-', toString(number % 1000)), toUInt16(number % 8), toUInt64(number % 1000 + 1), toUInt64((number * 7919) % 5000000), "
        + `toUInt64(number % 3), toDateTime(${to / 1000}) FROM system.numbers LIMIT 720000`,
    });
    await ch.command({
      query: `INSERT INTO ${db}.period_closes (period_start, source_partition, closed_at, watermark_ms, ledger_rows, source_topic, source_first_offset, source_close_offset, repartition_topic, repartition_first_offset, repartition_close_offset) VALUES `
        + Array.from({ length: config.partitions }, (_, p) => `(toDateTime(${(to - HOUR) / 1000}), ${p}, toDateTime(${to / 1000 + 60}), ${to + HOUR}, 1, 'impressions', 0, 10, 'aggregator-repartition', -1, 0)`).join(', '),
    });
    const [expected] = await queryRows<{ i: string; s: string; d: string }>(ch,
      `SELECT sum(impressions) AS i, sum(spend_micros) AS s, sum(duplicates) AS d FROM ${db}.billing_ledger WHERE advertiser_id = 'big-adv'`);
    const big = await BillingServer.start(config, ch, { admin: { tokenId: 'a', name: 'admin', scopes: ['admin'] } });
    server = big;

    const run = async () => {
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      let peak = rss0;
      const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      let lines = 0;
      let tail = '';
      const t0 = Date.now();
      const res = await big.get(exportUrl({ advertiser_id: 'big-adv', from: isoUtc(from), to: isoUtc(to), granularity: 'hour' }), 'admin', (c) => {
        hash.update(c);
        bytes += c.length;
        for (let i = 0; i < c.length; i++) if (c[i] === 10) lines++;
        tail = (tail + c.toString('latin1')).slice(-400);
      });
      const ms = Date.now() - t0;
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage().rss);
      return { res, ms, bytes, lines, tail, digest: hash.digest('hex'), rssDeltaMb: (peak - rss0) / 2 ** 20 };
    };
    const a = await run();
    assert.equal(a.res.status, 200);
    assert.equal(a.res.headers['x-tally-export-status'], 'final');
    // 7 comment lines + 8 lineage lines + header + 720 000 rows + total + sha256
    assert.equal(a.lines, 7 + 8 + 1 + 720_000 + 1 + 1);
    const totalLine = a.tail.split('\n').at(-3) as string;
    assert.equal(totalLine, `total,big-adv,,${expected.i},${expected.s},${formatMicros(BigInt(expected.s))},${expected.d},final`);
    const b = await run();
    assert.equal(b.digest, a.digest, 'byte-identical on repeat');
    assert.equal(b.res.trailers['x-tally-export-sha256'], a.res.trailers['x-tally-export-sha256']);
    process.stderr.write(`      [billing] 720k rows, ${(a.bytes / 2 ** 20).toFixed(1)} MiB CSV: ${a.ms} ms / ${b.ms} ms, peak RSS delta ${a.rssDeltaMb.toFixed(1)} / ${b.rssDeltaMb.toFixed(1)} MiB (server + client in this process)\n`);
    assert.ok(Math.min(a.rssDeltaMb, b.rssDeltaMb) < 100, `peak RSS grew by ${a.rssDeltaMb.toFixed(1)} / ${b.rssDeltaMb.toFixed(1)} MiB`);
  });
});
