/**
 * GET /api/v1/breakdown: counts by the values of one dimension, from impression_breakdowns FINAL
 * (one row per window, campaign, partition, dimension and value; a dimension's values of a window
 * row sum to that row). Values are validated and escaped like every read (ClickHouse 18.16 has no
 * query parameters); the dimension name comes from the configured list only.
 *
 * The range covers exactly what /counts covers for the same parameters, so the totals are equal:
 * window granularity reads windows starting in [from, to); the others read, like /counts' hours
 * and days, whole final hours starting in [from, finalEnd) (where /counts reads the billing ledger)
 * and windows starting in [finalEnd, to) (see ledger/ sourceBounds).
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { dateTimeLiteral, identifier, idLiteral, queryRows, stringLiteral, uintLiteral } from '../clickhouse/index.js';
import type { BreakdownResponse, BreakdownRow } from '../contracts/api-types.js';
import { leastMature, type Maturity } from '../contracts/maturity.js';
import { microsJson, parseUInt64 } from '../contracts/micros.js';
import { badRequest } from '../http/index.js';
import { HOUR_MS, maturityOf, queryFrontier, type Frontier } from '../ledger/index.js';
import type { BreakdownQuery } from './query-params.js';
import { exactNumber, PERIOD_SECONDS, periodStartSql } from './read-queries.js';

/** Most rows one breakdown answer holds (value × period). */
export const MAX_BREAKDOWN_ROWS = 50_000;

type Num = string | number;

interface BreakdownSqlRow {
  period_s: Num;
  value: string;
  impressions: Num;
  spend_micros: Num;
  /** Latest window end of the group: how settled its numbers are. */
  end_s: Num;
}

/** [from, finalEnd): whole final hours; [finalEnd, to): windows (as /counts splits, in whole seconds). */
function rangeCondition(q: BreakdownQuery, frontier: Frontier): string {
  const fromMs = Math.ceil(q.from / 1000) * 1000;
  const toMs = Math.ceil(q.to / 1000) * 1000;
  if (q.granularity === 'window') return `window_start >= ${dateTimeLiteral(fromMs)} AND window_start < ${dateTimeLiteral(toMs)}`;
  const finalEnd = Math.min(toMs, Math.max(fromMs, frontier.finalBefore ?? fromMs));
  const hour = `intDiv(toUInt32(window_start), ${uintLiteral(HOUR_MS / 1000)}) * ${uintLiteral(HOUR_MS / 1000)}`;
  const finalHours = `(${hour} >= ${uintLiteral(fromMs / 1000)} AND ${hour} < ${uintLiteral(finalEnd / 1000)})`;
  const windows = `(window_start >= ${dateTimeLiteral(finalEnd)} AND window_start < ${dateTimeLiteral(toMs)})`;
  return `(${finalHours} OR ${windows})`;
}

export function breakdownSql(database: string, q: BreakdownQuery, frontier: Frontier, limit: number): string {
  const period = q.granularity === 'total' ? '0' : periodStartSql(q.granularity);
  const where = [`dimension = ${stringLiteral(q.dimension)}`, rangeCondition(q, frontier)];
  if (q.advertiserId !== null) where.push(`advertiser_id = ${idLiteral(q.advertiserId)}`);
  if (q.campaignId !== null) where.push(`campaign_id = ${idLiteral(q.campaignId)}`);
  return `SELECT ${period} AS period_s, value, sum(impressions) AS impressions, sum(spend_micros) AS spend_micros, max(toUInt32(window_end)) AS end_s `
    + `FROM ${identifier(database)}.impression_breakdowns FINAL WHERE ${where.join(' AND ')} `
    + `GROUP BY period_s, value ORDER BY period_s, impressions DESC, value LIMIT ${uintLiteral(Math.max(1, Math.floor(limit)))}`;
}

/** The answer from the query rows (pure). */
export function breakdownResponse(
  q: BreakdownQuery, raw: BreakdownSqlRow[], ctx: { windowMs: number; allowedLatenessMs: number; frontier: Frontier },
): BreakdownResponse {
  const maturity = (start: number, end: number): Maturity => maturityOf(start, end - start, ctx.frontier, ctx.allowedLatenessMs);
  let least: Maturity = raw.length === 0 ? maturity(q.from, q.to) : 'final';
  let impressions = 0n;
  let spend = 0n;
  const rows: BreakdownRow[] = raw.map((r) => {
    const lastEnd = exactNumber(r.end_s) * 1000;
    let periodStart: number;
    let periodEnd: number;
    if (q.granularity === 'total') {
      [periodStart, periodEnd] = [q.from, q.to];
    } else {
      periodStart = exactNumber(r.period_s) * 1000;
      periodEnd = q.granularity === 'window' ? lastEnd : periodStart + Math.max(PERIOD_SECONDS[q.granularity] * 1000, ctx.windowMs);
    }
    // A total's numbers are as settled as its latest window; a period's as the period.
    const m = q.granularity === 'total' ? maturity(lastEnd - ctx.windowMs, lastEnd) : maturity(periodStart, periodEnd);
    least = leastMature(least, m);
    const spendMicros = parseUInt64(r.spend_micros, 'spend_micros');
    impressions += BigInt(r.impressions);
    spend += spendMicros;
    return { periodStart, periodEnd, value: r.value, impressions: exactNumber(r.impressions), spendMicros: microsJson(spendMicros), maturity: m };
  });
  return {
    dimension: q.dimension, advertiserId: q.advertiserId, campaignId: q.campaignId, from: q.from, to: q.to, granularity: q.granularity, rows,
    totals: { impressions: exactNumber(impressions), spendMicros: microsJson(spend), maturity: least },
  };
}

export async function queryBreakdown(
  ch: ClickHouseClient, database: string, q: BreakdownQuery, settings: { windowMs: number; allowedLatenessMs: number; partitions: number },
): Promise<BreakdownResponse> {
  const frontier = await queryFrontier(ch, database, settings.partitions);
  const raw = await queryRows<BreakdownSqlRow>(ch, breakdownSql(database, q, frontier, MAX_BREAKDOWN_ROWS + 1));
  if (raw.length > MAX_BREAKDOWN_ROWS) {
    throw badRequest(`more than ${MAX_BREAKDOWN_ROWS} rows: ask for a shorter range, one campaign or a coarser granularity`, 'granularity');
  }
  return breakdownResponse(q, raw, { windowMs: settings.windowMs, allowedLatenessMs: settings.allowedLatenessMs, frontier });
}
