/**
 * What verify reads from ClickHouse: impression_counts and impression_breakdowns FINAL, summed
 * over source partitions, for the ids of one truth (advertiser_id starting with its prefix). Sums
 * are read as BigInt, never as floats. ClickHouse 18.16 has no query parameters: the database is
 * an `identifier`, the prefix and dimension names `stringLiteral`s.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { identifier, queryRows, stringLiteral } from '../clickhouse/index.js';
import type { Dimension } from '../contracts/dimensions.js';

/** One (window, advertiser, campaign) as ClickHouse has it, sums exact. */
export interface ActualRow {
  windowStart: number;
  advertiserId: string;
  campaignId: string;
  impressions: bigint;
  spendMicros: bigint;
}

/** One value of one dimension of a (window, advertiser, campaign) as ClickHouse has it. */
export interface ActualBreakdownRow extends ActualRow {
  dimension: string;
  value: string;
}

/** The LIKE pattern matching every string that starts with prefix (%, _ and \ escaped). */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function prefixCondition(idPrefix: string): string | null {
  return idPrefix === '' ? null : `advertiser_id LIKE ${stringLiteral(likePrefix(idPrefix))}`;
}

function whereClause(conditions: Array<string | null>): string {
  const kept = conditions.filter((c): c is string => c !== null);
  return kept.length === 0 ? '' : `WHERE ${kept.join(' AND ')} `;
}

/** The query verify runs for the counts; exported for the docs and tests. */
export function actualRowsSql(database: string, idPrefix: string): string {
  return `SELECT toUnixTimestamp(window_start) * 1000 AS ws, advertiser_id, campaign_id, `
    + `sum(impressions) AS imps, sum(spend_micros) AS spend `
    + `FROM ${identifier(database)}.impression_counts FINAL ${whereClause([prefixCondition(idPrefix)])}`
    + `GROUP BY ws, advertiser_id, campaign_id`;
}

/** The query verify runs for the breakdowns of these dimensions (at least one). */
export function actualBreakdownsSql(database: string, idPrefix: string, dimensions: readonly Dimension[]): string {
  const inDimensions = `dimension IN (${dimensions.map(stringLiteral).join(', ')})`;
  return `SELECT toUnixTimestamp(window_start) * 1000 AS ws, advertiser_id, campaign_id, dimension, value, `
    + `sum(impressions) AS imps, sum(spend_micros) AS spend `
    + `FROM ${identifier(database)}.impression_breakdowns FINAL ${whereClause([prefixCondition(idPrefix), inDimensions])}`
    + `GROUP BY ws, advertiser_id, campaign_id, dimension, value`;
}

interface RawRow {
  ws: string | number;
  advertiser_id: string;
  campaign_id: string;
  imps: string | number;
  spend: string | number;
}

interface RawBreakdownRow extends RawRow {
  dimension: string;
  value: string;
}

function actualRowOf(r: RawRow): ActualRow {
  return { windowStart: Number(r.ws), advertiserId: r.advertiser_id, campaignId: r.campaign_id, impressions: BigInt(r.imps), spendMicros: BigInt(r.spend) };
}

/** The exact per-key sums in ClickHouse for ids starting with idPrefix (all rows when empty). */
export async function queryActualRows(ch: ClickHouseClient, database: string, idPrefix: string): Promise<ActualRow[]> {
  return (await queryRows<RawRow>(ch, actualRowsSql(database, idPrefix))).map(actualRowOf);
}

/** The exact per-value sums of these dimensions in ClickHouse for ids starting with idPrefix. */
export async function queryActualBreakdowns(ch: ClickHouseClient, database: string, idPrefix: string, dimensions: readonly Dimension[]): Promise<ActualBreakdownRow[]> {
  if (dimensions.length === 0) return [];
  const raw = await queryRows<RawBreakdownRow>(ch, actualBreakdownsSql(database, idPrefix, dimensions));
  return raw.map((r) => ({ ...actualRowOf(r), dimension: r.dimension, value: r.value }));
}
