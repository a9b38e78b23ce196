/**
 * Reads of the billing ledger (ClickHouse), shared by the statements (billing/) and the counts
 * route (api/). A period (UTC hour) is *final* once every partition closed it: its numbers come
 * from `billing_ledger` only and never change. Other periods come from `impression_counts FINAL`
 * and are *provisional* (every window closed by the watermark) or *live*.
 *
 * The ledger is immutable but may hold a close twice (a sink crash between insert and commit
 * inserts identical rows again): reads collapse identical rows with GROUP BY … any(), so no FINAL
 * is needed; the roll-up (billing_statement) needs not even that (see rolledRowsSql). ClickHouse 18.16: no query parameters; ids are checked against the contract
 * pattern and escaped, times are integers, identifiers come from configuration.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { dateTimeLiteral, identifier, idLiteral, queryRows, uintLiteral } from '../clickhouse/index.js';
import type { Maturity } from '../contracts/maturity.js';
import { parseUInt64 } from '../contracts/micros.js';

export const HOUR_MS = 3_600_000;

type Num = string | number;

/** How far finality and the watermark have come. */
export interface Frontier {
  /** Periods starting before this are final (closed in every partition); null while a partition closed none. */
  finalBefore: number | null;
  /** Final periods starting before this are rolled up in billing_statement (≤ finalBefore); null: none yet. */
  rolledBefore: number | null;
  /** The lowest published watermark (null while a partition published none): windows ending at or before it − lateness are closed. */
  minWatermark: number | null;
}

export function frontierSql(database: string): string {
  const db = identifier(database);
  return `SELECT 'close' AS kind, toUInt16(source_partition) AS p, toInt64(toUInt32(max(period_start))) AS v FROM ${db}.period_closes GROUP BY source_partition `
    + `UNION ALL SELECT 'watermark' AS kind, toUInt16(source_partition) AS p, toInt64(max(watermark_ms)) AS v FROM ${db}.partition_watermarks GROUP BY source_partition `
    + `UNION ALL SELECT 'rolled' AS kind, toUInt16(0) AS p, toInt64(toUInt32(max(period_start))) AS v FROM ${db}.final_periods HAVING count() > 0`;
}

/** The frontier from frontierSql's rows (pure). */
export function frontierOf(rows: ReadonlyArray<{ kind: string; p: Num; v: Num }>, partitions: number): Frontier {
  const closes = new Map<number, number>();
  const marks = new Map<number, number>();
  let rolled: number | null = null;
  for (const r of rows) {
    if (r.kind === 'rolled') rolled = Number(r.v) * 1000 + HOUR_MS;
    else (r.kind === 'close' ? closes : marks).set(Number(r.p), Number(r.v));
  }
  const lowest = (m: Map<number, number>, f: (v: number) => number): number | null => {
    let min = Infinity;
    for (let p = 0; p < partitions; p++) {
      const v = m.get(p);
      if (v === undefined) return null;
      min = Math.min(min, f(v));
    }
    return min;
  };
  const finalBefore = lowest(closes, (s) => s * 1000 + HOUR_MS);
  return {
    finalBefore,
    rolledBefore: rolled === null || finalBefore === null ? null : Math.min(rolled, finalBefore),
    minWatermark: lowest(marks, (v) => v),
  };
}

export async function queryFrontier(ch: ClickHouseClient, database: string, partitions: number): Promise<Frontier> {
  return frontierOf(await queryRows<{ kind: string; p: Num; v: Num }>(ch, frontierSql(database)), partitions);
}

/** How settled the numbers of [periodStart, periodStart + periodMs) are. */
export function maturityOf(periodStart: number, periodMs: number, f: Frontier, allowedLatenessMs: number): Maturity {
  const end = periodStart + periodMs;
  if (f.finalBefore !== null && end <= f.finalBefore) return 'final';
  if (f.minWatermark !== null && end + allowedLatenessMs <= f.minWatermark) return 'provisional';
  return 'live';
}

export interface PeriodQuery {
  /** null: every advertiser (an admin). */
  advertiserId: string | null;
  campaignId: string | null;
  /** [from, to), epoch ms, whole seconds. */
  from: number;
  to: number;
  /** Period length in ms: 3 600 000 (hour) or 86 400 000 (day). */
  periodMs: number;
}

/** Where [from, to) splits between the sources: rolled up before rolledEnd, ledger before finalEnd, windows after. */
function sourceBounds(q: PeriodQuery, f: Pick<Frontier, 'finalBefore' | 'rolledBefore'>): { rolledEnd: number; finalEnd: number } {
  const clamp = (t: number | null, min: number) => Math.min(q.to, Math.max(min, t ?? min));
  const rolledEnd = clamp(f.rolledBefore, q.from);
  return { rolledEnd, finalEnd: clamp(f.finalBefore, rolledEnd) };
}

function sourceFilter(q: PeriodQuery, column: string, from: number, to: number): string {
  return [
    ...(q.advertiserId === null ? [] : [`advertiser_id = ${idLiteral(q.advertiserId)}`]),
    ...(q.campaignId === null ? [] : [`campaign_id = ${idLiteral(q.campaignId)}`]),
    `${column} >= ${dateTimeLiteral(from)}`, `${column} < ${dateTimeLiteral(to)}`,
  ].join(' AND ');
}

function periodColumns(q: PeriodQuery, column: string): string {
  const p = uintLiteral(q.periodMs / 1000);
  return `intDiv(toUInt32(${column}), ${p}) * ${p} AS period_s, advertiser_id, campaign_id`;
}

/**
 * Rolled-up final hours of [from, to): one row (period_s, advertiser_id, campaign_id, i, s, d) per
 * (hour, advertiser, campaign) — only the roll-up final_periods names (its lowest rollup_id), so
 * nothing needs collapsing. Empty when nothing of the range is rolled up.
 */
export function rolledRowsSql(database: string, q: PeriodQuery, f: Pick<Frontier, 'finalBefore' | 'rolledBefore'>): string {
  const db = identifier(database);
  const { rolledEnd } = sourceBounds(q, f);
  return `SELECT ${periodColumns(q, 'period_start')}, impressions AS i, spend_micros AS s, duplicates AS d FROM ${db}.billing_statement `
    + `WHERE ${sourceFilter(q, 'period_start', q.from, rolledEnd)} AND (period_start, rollup_id) IN `
    + `(SELECT period_start, min(rollup_id) FROM ${db}.final_periods WHERE ${sourceFilter({ ...q, advertiserId: null, campaignId: null }, 'period_start', q.from, rolledEnd)} GROUP BY period_start)`;
}

/**
 * Rows (period_s, advertiser_id, campaign_id, i, s, d) of [from, to) from three sources that never
 * overlap: final periods already rolled up (rolledRowsSql), final periods not rolled up yet
 * (billing_ledger, per partition; identical re-inserts of a close collapsed with GROUP BY … any()),
 * and the rest (impression_counts FINAL). Several rows may share a (period, advertiser, campaign):
 * sum them. `rolled: false` leaves the first source out (a caller reading it on its own).
 */
export function periodSourcesSql(database: string, q: PeriodQuery, f: Pick<Frontier, 'finalBefore' | 'rolledBefore'>, opts: { rolled?: boolean } = {}): string {
  const db = identifier(database);
  const { rolledEnd, finalEnd } = sourceBounds(q, f);
  const ledger = `SELECT ${periodColumns(q, 'period_start')}, any(impressions) AS i, any(spend_micros) AS s, any(duplicates) AS d `
    + `FROM ${db}.billing_ledger WHERE ${sourceFilter(q, 'period_start', rolledEnd, finalEnd)} GROUP BY period_start, advertiser_id, campaign_id, source_partition`;
  const windows = `SELECT ${periodColumns(q, 'window_start')}, impressions AS i, spend_micros AS s, duplicates AS d `
    + `FROM ${db}.impression_counts FINAL WHERE ${sourceFilter(q, 'window_start', finalEnd, q.to)}`;
  return [...(opts.rolled === false ? [] : [rolledRowsSql(database, q, f)]), ledger, windows].join(' UNION ALL ');
}

/** One row per (period, advertiser, campaign) in [from, to), from periodSourcesSql. */
export function periodRowsSql(database: string, q: PeriodQuery, f: Pick<Frontier, 'finalBefore' | 'rolledBefore'>, limit: number | null): string {
  return 'SELECT period_s, advertiser_id, campaign_id, sum(i) AS impressions, sum(s) AS spend_micros, sum(d) AS duplicates '
    + `FROM (${periodSourcesSql(database, q, f)}) GROUP BY period_s, advertiser_id, campaign_id `
    + `ORDER BY period_s, advertiser_id, campaign_id${limit === null ? '' : ` LIMIT ${uintLiteral(Math.max(1, Math.floor(limit)))}`}`;
}

export interface PeriodRow {
  periodStart: number;
  advertiserId: string;
  campaignId: string;
  impressions: bigint;
  spendMicros: bigint;
  duplicates: bigint;
}

export function toPeriodRow(r: { period_s: Num; advertiser_id: string; campaign_id: string; impressions: Num; spend_micros: Num; duplicates: Num }): PeriodRow {
  const periodS = Number(r.period_s);
  if (!Number.isSafeInteger(periodS) || periodS < 0) throw new TypeError(`bad period_s from ClickHouse: ${JSON.stringify(r.period_s)}`);
  return {
    periodStart: periodS * 1000, advertiserId: String(r.advertiser_id), campaignId: String(r.campaign_id),
    impressions: parseUInt64(r.impressions, 'impressions'), spendMicros: parseUInt64(r.spend_micros, 'spend_micros'), duplicates: parseUInt64(r.duplicates, 'duplicates'),
  };
}

/** Events refused as too_late that arrived in [from, to), by their own period. */
export interface LateUnbillable {
  events: bigint;
  periods: Array<{ periodStart: number; events: bigint }>;
}

/**
 * A dead letter's arrival period: the one the aggregator wrote (the period of its partition's
 * watermark at refusal, as in billing_late), or for a row stored before that column (0) the time it
 * reached ClickHouse.
 */
const DEAD_LETTER_ARRIVAL = 'if(toUInt32(arrival_period) = 0, inserted_at, arrival_period)';

/**
 * Late events of an advertiser by arrival period: from the ledger for arrival periods that are
 * final (immutable), from the dead letters' arrival_period for the others — the same clock on both
 * sides of the split, so no late event is counted twice or missed.
 */
export function lateUnbillableSql(database: string, advertiserId: string, from: number, to: number, finalBefore: number | null): string {
  const split = Math.min(to, Math.max(from, finalBefore ?? from));
  const adv = idLiteral(advertiserId);
  const ledger = 'SELECT toUInt64(toUInt32(original_period)) AS orig_s, any(events) AS n '
    + `FROM ${identifier(database)}.billing_late WHERE advertiser_id = ${adv} AND arrival_period >= ${dateTimeLiteral(from)} AND arrival_period < ${dateTimeLiteral(split)} `
    + 'GROUP BY arrival_period, original_period, source_partition';
  const open = 'SELECT toUInt64(intDiv(toUInt32(event_ts), 3600) * 3600) AS orig_s, count() AS n '
    + `FROM ${identifier(database)}.dead_letters FINAL WHERE reason = 'too_late' AND advertiser_id = ${adv} `
    + `AND ${DEAD_LETTER_ARRIVAL} >= ${dateTimeLiteral(split)} AND ${DEAD_LETTER_ARRIVAL} < ${dateTimeLiteral(to)} GROUP BY orig_s`;
  return `SELECT orig_s, sum(n) AS n FROM (${ledger} UNION ALL ${open}) GROUP BY orig_s ORDER BY orig_s`;
}

export async function queryLateUnbillable(ch: ClickHouseClient, database: string, advertiserId: string, from: number, to: number, finalBefore: number | null): Promise<LateUnbillable> {
  const rows = await queryRows<{ orig_s: Num; n: Num }>(ch, lateUnbillableSql(database, advertiserId, from, to, finalBefore));
  const periods = rows.map((r) => ({ periodStart: Number(r.orig_s) * 1000, events: parseUInt64(r.n, 'late events') }));
  return { events: periods.reduce((s, p) => s + p.events, 0n), periods };
}

/** The Kafka records a partition's numbers of [from, to) came from: per input, [first, close). */
export interface Lineage {
  partition: number;
  source: { topic: string; firstOffset: number | null; closeOffset: number };
  repartition: { topic: string; firstOffset: number | null; closeOffset: number };
}

export function lineageSql(database: string, from: number, to: number): string {
  return 'SELECT source_partition AS p, any(source_topic) AS st, max(source_close_offset) AS sc, '
    + 'countIf(source_first_offset >= 0) AS sn, minIf(source_first_offset, source_first_offset >= 0) AS sf, '
    + 'any(repartition_topic) AS rt, max(repartition_close_offset) AS rc, '
    + 'countIf(repartition_first_offset >= 0) AS rn, minIf(repartition_first_offset, repartition_first_offset >= 0) AS rf '
    + `FROM ${identifier(database)}.period_closes WHERE period_start >= ${dateTimeLiteral(from)} AND period_start < ${dateTimeLiteral(to)} `
    + 'GROUP BY p ORDER BY p';
}

export async function queryLineage(ch: ClickHouseClient, database: string, from: number, to: number): Promise<Lineage[]> {
  const rows = await queryRows<{ p: Num; st: string; sc: Num; sn: Num; sf: Num; rt: string; rc: Num; rn: Num; rf: Num }>(ch, lineageSql(database, from, to));
  return rows.map((r) => ({
    partition: Number(r.p),
    source: { topic: r.st, firstOffset: Number(r.sn) > 0 ? Number(r.sf) : null, closeOffset: Number(r.sc) },
    repartition: { topic: r.rt, firstOffset: Number(r.rn) > 0 ? Number(r.rf) : null, closeOffset: Number(r.rc) },
  }));
}

/**
 * When the period starting at `periodStart` became final: for each partition, its first close at
 * or after that period (a partition that closed a later period first held nothing of it); the
 * latest of those. Null while not final. Immutable once final.
 */
export function finalAtSql(database: string, periodStart: number): string {
  return 'SELECT source_partition AS p, toUInt32(min(closed_at)) AS at '
    + `FROM ${identifier(database)}.period_closes WHERE period_start >= ${dateTimeLiteral(periodStart)} GROUP BY p`;
}

export async function queryFinalAt(ch: ClickHouseClient, database: string, periodStart: number, partitions: number): Promise<number | null> {
  const rows = await queryRows<{ p: Num; at: Num }>(ch, finalAtSql(database, periodStart));
  if (rows.length < partitions) return null;
  return Math.max(...rows.map((r) => Number(r.at))) * 1000;
}
