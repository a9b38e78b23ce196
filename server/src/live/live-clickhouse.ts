/**
 * The live feed's ClickHouse queries (18.16 subset, every value escaped, no query parameters):
 * the preload of the range (rows older than the compacted topic still holds), the published
 * watermarks and the FINAL totals of closed windows for the exact check.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { dateTimeLiteral, identifier, queryRows } from '../clickhouse/index.js';
import { parseUInt64 } from '../contracts/micros.js';
import type { LiveRowInput } from './live-state.js';

/** Every row of impression_counts FINAL whose window starts at or after `fromMs`. */
export function preloadSql(database: string, fromMs: number): string {
  return 'SELECT toUnixTimestamp(window_start) * 1000 AS ws, toUnixTimestamp(window_end) * 1000 AS we, '
    + 'advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, version '
    + `FROM ${identifier(database)}.impression_counts FINAL WHERE window_start >= ${dateTimeLiteral(fromMs)}`;
}

/** Impressions and distinct windows of impression_counts FINAL for window starts in [fromMs, toMs]. */
export function closedTotalsSql(database: string, fromMs: number, toMs: number): string {
  return 'SELECT sum(impressions) AS imps, uniqExact(window_start) AS windows '
    + `FROM ${identifier(database)}.impression_counts FINAL `
    + `WHERE window_start >= ${dateTimeLiteral(fromMs)} AND window_start <= ${dateTimeLiteral(toMs)}`;
}

export function watermarksSql(database: string): string {
  return `SELECT source_partition AS p, max(watermark_ms) AS wm FROM ${identifier(database)}.partition_watermarks GROUP BY source_partition`;
}

type Num = string | number;

interface RawPreloadRow {
  ws: Num;
  we: Num;
  advertiser_id: string;
  campaign_id: string;
  source_partition: Num;
  impressions: Num;
  spend_micros: Num;
  duplicates: Num;
  version: Num;
}

/** UInt64 arrives as a decimal string (or a number); refuses anything that is not an exact integer. */
export function toSafeInt(v: Num, what: string): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} is not a safe integer: ${String(v)}`);
  return n;
}

export async function preloadRows(ch: ClickHouseClient, database: string, fromMs: number): Promise<LiveRowInput[]> {
  const raw = await queryRows<RawPreloadRow>(ch, preloadSql(database, fromMs));
  return raw.map((r) => ({
    windowStart: toSafeInt(r.ws, 'window_start'),
    windowEnd: toSafeInt(r.we, 'window_end'),
    advertiserId: r.advertiser_id,
    campaignId: r.campaign_id,
    sourcePartition: toSafeInt(r.source_partition, 'source_partition'),
    impressions: toSafeInt(r.impressions, 'impressions'),
    spendMicros: parseUInt64(r.spend_micros, 'spend_micros'),
    duplicates: toSafeInt(r.duplicates, 'duplicates'),
    version: toSafeInt(r.version, 'version'),
  }));
}

/** The minimum over partitions 0 … partitions−1 of the watermarks the sink stored; null while one is missing. */
export async function clickhouseMinWatermark(ch: ClickHouseClient, database: string, partitions: number): Promise<number | null> {
  const rows = await queryRows<{ p: Num; wm: Num }>(ch, watermarksSql(database));
  const byPartition = new Map(rows.map((r) => [Number(r.p), Number(r.wm)]));
  let min = Infinity;
  for (let p = 0; p < partitions; p++) {
    const wm = byPartition.get(p);
    if (wm === undefined || !Number.isFinite(wm)) return null;
    min = Math.min(min, wm);
  }
  return min;
}

export async function closedTotals(ch: ClickHouseClient, database: string, fromMs: number, toMs: number): Promise<{ impressions: bigint; windows: number }> {
  const rows = await queryRows<{ imps: Num; windows: Num }>(ch, closedTotalsSql(database, fromMs, toMs));
  const r = rows[0];
  return { impressions: r === undefined ? 0n : BigInt(r.imps), windows: r === undefined ? 0 : Number(r.windows) };
}
