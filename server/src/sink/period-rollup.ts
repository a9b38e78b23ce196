/**
 * Rolls final periods up into `billing_statement` (the ledger summed over partitions), in order, so
 * statements and hourly/daily counts of a closed month read one row per (hour, campaign) instead of
 * one per partition. Run by the sink after it inserted period closes (and at start). Idempotent:
 * a period rolled twice (a crash between the two inserts, two sinks) gets identical rows, which
 * readers collapse; `final_periods` is written after the rows, so a period listed there is complete.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { dateTimeLiteral, identifier, queryRows, uintLiteral } from '../clickhouse/index.js';
import { HOUR_MS, queryFrontier } from '../ledger/index.js';

/** Most periods rolled up in one call (a sink catching up on a long history does it in steps). */
const MAX_PERIODS_PER_CALL = 24 * 7;

export async function rollUpFinalPeriods(ch: ClickHouseClient, database: string, partitions: number, now: number): Promise<number[]> {
  const db = identifier(database);
  const frontier = await queryFrontier(ch, database, partitions);
  if (frontier.finalBefore === null) return [];
  let from: number;
  if (frontier.rolledBefore !== null) {
    from = frontier.rolledBefore;
  } else {
    const [first] = await queryRows<{ s: string | number; n: string | number }>(ch,
      `SELECT toUInt32(min(period_start)) AS s, count() AS n FROM ${db}.period_closes`);
    if (first === undefined || Number(first.n) === 0) return [];
    from = Number(first.s) * 1000;
  }
  const rolled: number[] = [];
  for (let p = from; p < frontier.finalBefore && rolled.length < MAX_PERIODS_PER_CALL; p += HOUR_MS) {
    await ch.command({
      query: `INSERT INTO ${db}.billing_statement (period_start, advertiser_id, campaign_id, impressions, spend_micros, duplicates) `
        + 'SELECT period_start, advertiser_id, campaign_id, sum(i), sum(s), sum(d) FROM ('
        + 'SELECT period_start, advertiser_id, campaign_id, any(impressions) AS i, any(spend_micros) AS s, any(duplicates) AS d '
        + `FROM ${db}.billing_ledger WHERE period_start = ${dateTimeLiteral(p)} GROUP BY period_start, advertiser_id, campaign_id, source_partition) `
        + 'GROUP BY period_start, advertiser_id, campaign_id',
    });
    const [count] = await queryRows<{ n: string | number }>(ch,
      `SELECT uniqExact(advertiser_id, campaign_id) AS n FROM ${db}.billing_statement WHERE period_start = ${dateTimeLiteral(p)}`);
    await ch.command({
      query: `INSERT INTO ${db}.final_periods (period_start, final_at, statement_rows) VALUES (${dateTimeLiteral(p)}, ${dateTimeLiteral(now)}, ${uintLiteral(Number(count?.n ?? 0))})`,
    });
    rolled.push(p);
  }
  return rolled;
}
