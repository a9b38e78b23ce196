/**
 * The breakdown section of a statement (`breakdown=country,device`): for each statement row
 * (period, campaign) and each dimension asked for, every value with its impressions and exact
 * spend, rendered by ClickHouse (breakdownLineSql) in (period, campaign, dimension as asked, most
 * impressions first, value) order. A dimension's values of a row sum to that row exactly:
 *
 * - The values come from `impression_breakdowns FINAL`, windows of [from, to), summed over
 *   windows and partitions like the rows. The windows of a final hour are frozen: no new version
 *   of them can come once the hour is closed in every partition, and the sink inserts a batch's
 *   breakdown rows before its period closes. So a final statement's section, like its rows, is the
 *   same on every export.
 * - What a row holds that no value does — windows counted before the dimension was configured, or
 *   before breakdowns existed (README: they have none) — is added to `unknown`, the bucket the
 *   aggregator uses for the same case on a restored row. The rows are read from the statement's
 *   own sources (ledger/ periodSourcesSql, the same split and frontier), so for final periods they
 *   are the rows above.
 * - Values exceeding a final row cannot come from the pipeline (each window record's values sum
 *   to it, checked by the sink): the query then fails (throwIf, BreakdownMismatchError) rather than
 *   print a breakdown that does not add up.
 * - Periods not final yet (live, provisional) are read after the rows and may have grown in
 *   between, as two provisional statements read a moment apart differ. Their values sum to the
 *   rows as this query reads them, but for a sink batch landing between its reads of the two tables
 *   (a value newer than its row is kept, not clamped: nothing final depends on it).
 *
 * ClickHouse 18.16 has no query parameters: the advertiser id goes through idLiteral, dimension
 * names are checked against the contract's list (and configured ones, in export-params) and
 * escaped, times and periods are integers turned into literals.
 */
import { dateTimeLiteral, identifier, idLiteral, stringLiteral, uintLiteral } from '../clickhouse/index.js';
import { isDimension, UNKNOWN_VALUE, type Dimension } from '../contracts/dimensions.js';
import { TallyError } from '../errors/index.js';
import { periodSourcesSql, type Frontier } from '../ledger/index.js';
import { breakdownLineSql, finalPeriodSql, maturitySql } from './export-lines.js';
import { PERIOD_MS, type ExportQuery } from './export-params.js';

/** A final period's breakdown does not add up to its statement row: the section is not written. */
export class BreakdownMismatchError extends TallyError {}

/** ClickHouse's error code for a throwIf that fired (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO). */
export const THROW_IF_CODE = '395';

/**
 * The section's SQL, for ClickHouse's TabSeparatedRaw: one line a (period, campaign, dimension,
 * value), then an empty line and a totals line (WITH TOTALS: the encoder's end-of-output mark).
 */
export function breakdownSql(database: string, q: ExportQuery, dimensions: readonly Dimension[], frontier: Frontier, allowedLatenessMs: number): string {
  if (dimensions.length === 0) throw new TallyError('a breakdown names at least one dimension');
  const names = dimensions.map((d) => {
    if (!isDimension(d)) throw new TallyError(`not a dimension: ${JSON.stringify(d)}`);
    return stringLiteral(d);
  });
  const db = identifier(database);
  const periodMs = PERIOD_MS[q.granularity];
  const p = uintLiteral(periodMs / 1000);
  const zero = 'materialize(toUInt64(0))';
  const values = `SELECT intDiv(toUInt32(window_start), ${p}) * ${p} AS period_s, advertiser_id, campaign_id, dimension, value, impressions AS i, spend_micros AS s `
    + `FROM ${db}.impression_breakdowns FINAL WHERE advertiser_id = ${idLiteral(q.advertiserId)} AND dimension IN (${names.join(', ')}) `
    + `AND window_start >= ${dateTimeLiteral(q.from)} AND window_start < ${dateTimeLiteral(q.to)}`;
  // Per row and dimension: the row's numbers (ri, rs) beside its values' sums (vi, vs).
  const rows = periodSourcesSql(database, { advertiserId: q.advertiserId, campaignId: null, from: q.from, to: q.to, periodMs }, frontier);
  const sides = `SELECT period_s, advertiser_id, campaign_id, arrayJoin([${names.join(', ')}]) AS dimension, i AS ri, s AS rs, ${zero} AS vi, ${zero} AS vs FROM (${rows}) `
    + `UNION ALL SELECT period_s, advertiser_id, campaign_id, dimension, ${zero} AS ri, ${zero} AS rs, i AS vi, s AS vs FROM (${values})`;
  const unaccounted = `SELECT period_s, advertiser_id, campaign_id, dimension, materialize(${stringLiteral(UNKNOWN_VALUE)}) AS value, toUInt64(ri - vi) AS i, toUInt64(rs - vs) AS s `
    + `FROM (SELECT period_s, advertiser_id, campaign_id, dimension, sum(ri) AS ri, sum(rs) AS rs, sum(vi) AS vi, sum(vs) AS vs FROM (${sides}) `
    + 'GROUP BY period_s, advertiser_id, campaign_id, dimension) '
    + `WHERE throwIf(${finalPeriodSql(periodMs, frontier)} AND (vi > ri OR vs > rs)) = 0 AND ri >= vi AND rs >= vs AND (ri > vi OR rs > vs)`;
  return `SELECT ${breakdownLineSql(q.format, maturitySql(periodMs, frontier, allowedLatenessMs))} AS line FROM (${values} UNION ALL ${unaccounted}) `
    + 'GROUP BY period_s, advertiser_id, campaign_id, dimension, value WITH TOTALS '
    + `ORDER BY period_s, campaign_id, indexOf([${names.join(', ')}], dimension), sum(i) DESC, value`;
}
