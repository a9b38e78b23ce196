/**
 * Month-scale reads (issue 11): one advertiser with 1,000 campaigns and a full closed month over 8
 * partitions, written straight into ClickHouse as the pipeline would have: window rows in
 * impression_counts (one 60 s window per campaign, hour and partition: 5.76M rows), the same counts
 * in billing_ledger (per partition) and billing_statement (summed), every hour final. Then, alternating:
 *   - the month's hourly statement (CSV, 720,000 rows, streamed and hashed), as `runExport` serves it
 *     (from the roll-up) and the same statement read from impression_counts FINAL;
 *   - a 30-day daily counts query (30,000 rows) from the roll-up and from impression_counts FINAL.
 * Both ways must give the same bytes and rows, or the bench fails.
 */
import crypto from 'node:crypto';
import { parseExportParams, runExport, statementSql } from '../server/src/billing/index.js';
import { createClickHouse, queryRows } from '../server/src/clickhouse/index.js';
import { periodRowsSql, queryFrontier } from '../server/src/ledger/index.js';
import { createSandbox } from '../test/kit/sandbox.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const CAMPAIGNS = 1_000;

export interface LedgerReadsResult {
  rows: number;
  bytes: number;
  /** ms per run: the hourly month statement from the ledger roll-up, and from impression_counts FINAL. */
  statement: number[];
  statementFinal: number[];
  /** ms per run: 30 days of daily counts, both ways. */
  counts: number[];
  countsFinal: number[];
}

export async function measureLedgerReads(runs: number, log: (m: string) => void): Promise<LedgerReadsResult> {
  const sb = await createSandbox('benchledger');
  const { config } = sb;
  const ch = createClickHouse(config, { requestTimeoutMs: 600_000 });
  const db = config.clickhouse.database;
  const from = Date.UTC(2025, 0, 1);
  const to = from + 30 * DAY;
  const base = from / 1000;
  const n = 720 * CAMPAIGNS * config.partitions;
  try {
    log(`ledger reads: writing a month of 1,000 campaigns × 8 partitions (${n.toLocaleString('en')} window and ledger rows)…`);
    const t0 = Date.now();
    // number → hour h = n / 8000, campaign c = n % 1000, partition p = (n / 1000) % 8.
    const cols = `toDateTime(${base} + intDiv(number, 8000) * 3600) AS hour, concat('cmp-', toString(number % 1000)) AS campaign, `
      + 'toUInt16(intDiv(number, 1000) % 8) AS part, toUInt64(number % 997 + 1) AS imps, toUInt64((number * 7919) % 5000000) AS spend, toUInt64(number % 3) AS dups';
    await ch.command({
      query: `INSERT INTO ${db}.impression_counts (window_start, window_end, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, version, final, revised) `
        + `SELECT hour + part * 60, hour + part * 60 + 60, 'bench-adv', campaign, part, imps, spend, dups, 1, 1, 0 FROM (SELECT ${cols} FROM system.numbers LIMIT ${n})`,
    });
    await ch.command({
      query: `INSERT INTO ${db}.billing_ledger (period_start, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, closed_at) `
        + `SELECT hour, 'bench-adv', campaign, part, imps, spend, dups, hour + 3700 FROM (SELECT ${cols} FROM system.numbers LIMIT ${n})`,
    });
    await ch.command({
      query: `INSERT INTO ${db}.billing_statement (period_start, advertiser_id, campaign_id, impressions, spend_micros, duplicates, rollup_id) `
        + `SELECT period_start, advertiser_id, campaign_id, sum(impressions), sum(spend_micros), sum(duplicates), 1 FROM ${db}.billing_ledger GROUP BY period_start, advertiser_id, campaign_id`,
    });
    await ch.command({ query: `INSERT INTO ${db}.final_periods (period_start, final_at, statement_rows, rollup_id) SELECT toDateTime(${base} + number * 3600), toDateTime(${base} + number * 3600 + 3700), ${CAMPAIGNS}, 1 FROM system.numbers LIMIT 720` });
    const closes = Array.from({ length: config.partitions }, (_, p) => `(toDateTime(${(to - HOUR) / 1000}), ${p}, toDateTime(${to / 1000 + 60}), ${to + HOUR}, ${CAMPAIGNS}, 'impressions', 0, 1, 'aggregator-repartition', -1, 0)`);
    await ch.command({ query: `INSERT INTO ${db}.period_closes VALUES ${closes.join(', ')}` });
    const marks = Array.from({ length: config.partitions }, (_, p) => `(${p}, ${to + HOUR}, ${to + HOUR}, toDateTime(${to / 1000}), ${to + HOUR})`);
    await ch.command({ query: `INSERT INTO ${db}.partition_watermarks VALUES ${marks.join(', ')}` });
    log(`  written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const q = parseExportParams({ advertiser_id: 'bench-adv', from: String(from), to: String(to), granularity: 'hour', format: 'csv' });
    const frontier = await queryFrontier(ch, db, config.partitions);
    if (frontier.rolledBefore !== to || frontier.finalBefore !== to) throw new Error(`the month is not all final and rolled up: ${JSON.stringify(frontier)}`);
    const viaLedger = async () => {
      const hash = crypto.createHash('sha256');
      let bytes = 0;
      const t = performance.now();
      const r = await runExport(ch, config, q, async (c) => { hash.update(c); bytes += c.length; });
      return { ms: performance.now() - t, rows: r.rows, bytes, digest: hash.digest('hex') };
    };
    // The same statement read from the window rows: what a final export cost before the ledger.
    const windowsOnly = { finalBefore: null, rolledBefore: null, minWatermark: frontier.minWatermark };
    const viaFinal = async () => {
      const t = performance.now();
      const rows = await queryRows<{ line: string }>(ch, statementSql(db, q, windowsOnly, config.allowedLatenessMs).rest.replace(' WITH TOTALS', ''));
      return { ms: performance.now() - t, rows: rows.length };
    };
    const countsQuery = { advertiserId: 'bench-adv', campaignId: null, from, to, periodMs: DAY };
    const counts = async (f: typeof frontier | typeof windowsOnly) => {
      const t = performance.now();
      const rows = await queryRows<{ impressions: string }>(ch, periodRowsSql(db, countsQuery, f, 50_001));
      return { ms: performance.now() - t, rows: rows.length, sum: rows.reduce((s, r) => s + BigInt(r.impressions), 0n) };
    };
    const out: LedgerReadsResult = { rows: 0, bytes: 0, statement: [], statementFinal: [], counts: [], countsFinal: [] };
    for (let i = 0; i < runs; i++) {
      const a = await viaLedger();
      const b = await viaFinal();
      const c = await counts(frontier);
      const d = await counts(windowsOnly);
      if (a.rows !== 720 * CAMPAIGNS || b.rows !== a.rows) throw new Error(`statement rows: ledger ${a.rows}, FINAL ${b.rows}; expected ${720 * CAMPAIGNS}`);
      if (c.rows !== 30 * CAMPAIGNS || c.rows !== d.rows || c.sum !== d.sum) throw new Error(`daily counts differ: ledger ${c.rows} rows / ${c.sum}, FINAL ${d.rows} rows / ${d.sum}`);
      out.rows = a.rows;
      out.bytes = a.bytes;
      out.statement.push(a.ms);
      out.statementFinal.push(b.ms);
      out.counts.push(c.ms);
      out.countsFinal.push(d.ms);
      log(`ledger reads ${i + 1}/${runs}: month statement ${a.ms.toFixed(0)} ms (FINAL ${b.ms.toFixed(0)} ms), 30-day daily counts ${c.ms.toFixed(0)} ms (FINAL ${d.ms.toFixed(0)} ms)`);
    }
    return out;
  } finally {
    await ch.close();
    await sb.cleanup();
  }
}
