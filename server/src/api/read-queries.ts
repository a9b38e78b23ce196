/**
 * The read routes' ClickHouse queries. ClickHouse 18.16 has no query parameters, so every value is
 * validated (ids against the contract pattern, times as integers) and then escaped with the
 * sql-literal helpers; identifiers come only from configuration. Exact numbers: impression_counts
 * FINAL (one row per key, highest version) and, for hours that are final, the billing ledger (see
 * server/src/ledger); sums read as decimal strings and converted only when exact in a JSON number.
 * Every count row says its maturity: live, provisional or final.
 *
 * Periods are computed with integer arithmetic on the UTC epoch (intDiv(toUInt32(window_start),
 * 3600) * 3600) rather than toStartOfHour/toStartOfDay, which follow the server's time zone;
 * toStartOfInterval does not exist on 18.16.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { dateTimeLiteral, identifier, idLiteral, queryRows } from '../clickhouse/index.js';
import type { AdvertisersResponse, CampaignsResponse, CountRow, CountsResponse, Granularity, Micros } from '../contracts/api-types.js';
import { leastMature, type Maturity } from '../contracts/maturity.js';
import { microsJson, parseUInt64 } from '../contracts/micros.js';
import { badRequest } from '../http/index.js';
import { maturityOf, periodRowsSql, queryFrontier, type Frontier } from '../ledger/index.js';
import type { CountsQuery } from './query-params.js';

/** Most rows one counts answer holds; beyond it the caller is asked for a shorter range or a coarser granularity. */
export const MAX_COUNT_ROWS = 50_000;
/** Most campaigns one /campaigns answer holds. */
export const MAX_CAMPAIGN_ROWS = 50_000;

export const PERIOD_SECONDS: Record<Exclude<Granularity, 'window'>, number> = { hour: 3600, day: 86_400 };

/** The UTC start (in seconds) of a window row's window, hour or day, as a ClickHouse expression. */
export function periodStartSql(granularity: Granularity): string {
  return granularity === 'window'
    ? 'toUInt32(window_start)'
    : `intDiv(toUInt32(window_start), ${PERIOD_SECONDS[granularity]}) * ${PERIOD_SECONDS[granularity]}`;
}

function table(database: string): string {
  return `${identifier(database)}.impression_counts`;
}

function advertiserCondition(advertisers: readonly string[] | null): string {
  if (advertisers === null) return '1';
  if (advertisers.length === 0) return '0';
  return `advertiser_id IN (${advertisers.map(idLiteral).join(', ')})`;
}

/** The counts query: one row per (period, advertiser, campaign) for windows starting in [from, to). */
export function countsSql(database: string, q: CountsQuery, limit: number): string {
  const period = periodStartSql(q.granularity);
  // Window starts are whole seconds: start*1000 >= from ⇔ start >= ceil(from/1000), and likewise for to.
  const fromS = Math.ceil(q.from / 1000);
  const toS = Math.ceil(q.to / 1000);
  const where = [
    `window_start >= ${dateTimeLiteral(fromS * 1000)}`,
    `window_start < ${dateTimeLiteral(toS * 1000)}`,
  ];
  if (q.advertiserId !== null) where.push(`advertiser_id = ${idLiteral(q.advertiserId)}`);
  if (q.campaignId !== null) where.push(`campaign_id = ${idLiteral(q.campaignId)}`);
  return `SELECT ${period} AS period_s, max(toUInt32(window_end)) AS end_s, advertiser_id, campaign_id, `
    + 'sum(impressions) AS impressions, sum(spend_micros) AS spend_micros, sum(duplicates) AS duplicates '
    + `FROM ${table(database)} FINAL WHERE ${where.join(' AND ')} `
    + 'GROUP BY period_s, advertiser_id, campaign_id ORDER BY period_s, advertiser_id, campaign_id '
    + `LIMIT ${Math.max(1, Math.floor(limit))}`;
}

/** Every campaign of the advertisers (null: all) with its all-time totals. */
export function campaignsSql(database: string, advertisers: readonly string[] | null, limit: number): string {
  return 'SELECT advertiser_id, campaign_id, sum(impressions) AS impressions, sum(spend_micros) AS spend_micros, '
    + 'min(toUInt32(window_start)) AS first_s, max(toUInt32(window_start)) AS last_s '
    + `FROM ${table(database)} FINAL WHERE ${advertiserCondition(advertisers)} `
    + `GROUP BY advertiser_id, campaign_id ORDER BY advertiser_id, campaign_id LIMIT ${Math.max(1, Math.floor(limit))}`;
}

/** Every advertiser (null: all) with its number of campaigns and all-time totals. */
export function advertisersSql(database: string, advertisers: readonly string[] | null): string {
  return 'SELECT advertiser_id, uniqExact(campaign_id) AS campaigns, sum(impressions) AS impressions, sum(spend_micros) AS spend_micros '
    + `FROM ${table(database)} FINAL WHERE ${advertiserCondition(advertisers)} `
    + 'GROUP BY advertiser_id ORDER BY advertiser_id';
}

type Num = string | number;

/** A ClickHouse UInt64 of micros for a JSON answer: a number while exact, else digits. */
function micros(v: Num): Micros {
  return microsJson(parseUInt64(v, 'spend_micros'));
}

/** A ClickHouse integer (64-bit ones arrive as strings) as a JSON number, refusing anything not exact. */
export function exactNumber(v: Num | bigint): number {
  const b = typeof v === 'bigint' ? v : BigInt(v);
  if (b < 0n || b > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`value ${b} is not exact as a JSON number`);
  return Number(b);
}

interface CountSqlRow {
  period_s: Num;
  /** Window granularity only. */
  end_s?: Num;
  advertiser_id: string;
  campaign_id: string;
  impressions: Num;
  spend_micros: Num;
  duplicates: Num;
}

/** What a counts answer needs to know of the pipeline: window size and where finality stands. */
export interface CountsContext {
  windowMs: number;
  allowedLatenessMs: number;
  frontier: Frontier;
}

/** The counts route's answer from its query rows (pure). */
export function countsResponse(q: CountsQuery, raw: CountSqlRow[], ctx: CountsContext): CountsResponse {
  let maturity: Maturity = raw.length === 0 ? maturityOf(q.from, q.to - q.from, ctx.frontier, ctx.allowedLatenessMs) : 'final';
  const rows: CountRow[] = raw.map((r) => {
    const periodStart = exactNumber(r.period_s) * 1000;
    const periodEnd = q.granularity === 'window'
      ? exactNumber(r.end_s ?? 0) * 1000
      : periodStart + Math.max(PERIOD_SECONDS[q.granularity] * 1000, ctx.windowMs);
    const m = maturityOf(periodStart, periodEnd - periodStart, ctx.frontier, ctx.allowedLatenessMs);
    maturity = leastMature(maturity, m);
    return {
      periodStart, periodEnd, advertiserId: r.advertiser_id, campaignId: r.campaign_id,
      impressions: exactNumber(r.impressions), spendMicros: micros(r.spend_micros), duplicates: exactNumber(r.duplicates), maturity: m,
    };
  });
  let impressions = 0n;
  let spend = 0n;
  let duplicates = 0n;
  for (const r of raw) {
    impressions += BigInt(r.impressions);
    spend += BigInt(r.spend_micros);
    duplicates += BigInt(r.duplicates);
  }
  return {
    advertiserId: q.advertiserId, campaignId: q.campaignId, from: q.from, to: q.to, granularity: q.granularity, rows,
    totals: { impressions: exactNumber(impressions), spendMicros: microsJson(spend), duplicates: exactNumber(duplicates), maturity },
  };
}

/**
 * Counts per window (window rows), or per hour/day: hours that are final from the billing ledger,
 * the others from the window rows.
 */
export async function queryCounts(
  ch: ClickHouseClient, database: string, q: CountsQuery, settings: { windowMs: number; allowedLatenessMs: number; partitions: number },
): Promise<CountsResponse> {
  const frontier = await queryFrontier(ch, database, settings.partitions);
  const sql = q.granularity === 'window'
    ? countsSql(database, q, MAX_COUNT_ROWS + 1)
    : periodRowsSql(database, {
      advertiserId: q.advertiserId, campaignId: q.campaignId,
      // Window starts are whole seconds (see countsSql).
      from: Math.ceil(q.from / 1000) * 1000, to: Math.ceil(q.to / 1000) * 1000, periodMs: PERIOD_SECONDS[q.granularity] * 1000,
    }, frontier, MAX_COUNT_ROWS + 1);
  const raw = await queryRows<CountSqlRow>(ch, sql);
  if (raw.length > MAX_COUNT_ROWS) {
    throw badRequest(`more than ${MAX_COUNT_ROWS} rows: ask for a shorter range, one campaign or a coarser granularity`, 'granularity');
  }
  return countsResponse(q, raw, { windowMs: settings.windowMs, allowedLatenessMs: settings.allowedLatenessMs, frontier });
}

interface CampaignSqlRow {
  advertiser_id: string;
  campaign_id: string;
  impressions: Num;
  spend_micros: Num;
  first_s: Num;
  last_s: Num;
}

export async function queryCampaigns(ch: ClickHouseClient, database: string, advertisers: readonly string[] | null): Promise<CampaignsResponse> {
  const raw = await queryRows<CampaignSqlRow>(ch, campaignsSql(database, advertisers, MAX_CAMPAIGN_ROWS));
  return {
    campaigns: raw.map((r) => ({
      advertiserId: r.advertiser_id, campaignId: r.campaign_id,
      impressions: exactNumber(r.impressions), spendMicros: micros(r.spend_micros),
      firstWindow: exactNumber(r.first_s) * 1000, lastWindow: exactNumber(r.last_s) * 1000,
    })),
  };
}

interface AdvertiserSqlRow {
  advertiser_id: string;
  campaigns: Num;
  impressions: Num;
  spend_micros: Num;
}

/** Advertisers with data; for a non-admin list, every listed advertiser (zeros when it has no data yet). */
export async function queryAdvertisers(ch: ClickHouseClient, database: string, advertisers: readonly string[] | null): Promise<AdvertisersResponse> {
  const raw = await queryRows<AdvertiserSqlRow>(ch, advertisersSql(database, advertisers));
  const out = raw.map((r) => ({
    advertiserId: r.advertiser_id, campaigns: exactNumber(r.campaigns),
    impressions: exactNumber(r.impressions), spendMicros: micros(r.spend_micros),
  }));
  if (advertisers !== null) {
    const seen = new Set(out.map((a) => a.advertiserId));
    for (const id of advertisers) if (!seen.has(id)) out.push({ advertiserId: id, campaigns: 0, impressions: 0, spendMicros: 0 });
    out.sort((a, b) => (a.advertiserId < b.advertiserId ? -1 : a.advertiserId > b.advertiserId ? 1 : 0));
  }
  return { advertisers: out };
}
