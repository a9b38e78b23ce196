/**
 * The billing periods of a range as finance sees them: which hours are final and since when, and
 * when the others will be. A period (UTC hour) becomes final when every partition has closed it:
 * its watermark passed the period's end + allowed lateness + dedup horizon (the aggregator's close
 * rule, server/src/aggregator/core/partition-state.ts) and the close reached ClickHouse.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { dateTimeLiteral, identifier, queryRows } from '../clickhouse/index.js';
import type { PeriodStatus } from '../contracts/ledger-status.js';
import { HOUR_MS, maturityOf, type Frontier } from './ledger-reads.js';

type Num = string | number;

/** One close of a partition: the period it closed and when (epoch ms). */
export interface PartitionClose {
  partition: number;
  periodStart: number;
  closedAt: number;
}

/**
 * Each partition's closes of periods in [from, to), and its first close at or after `to` (which
 * also covers the range's later periods it had nothing in).
 */
export function periodClosesSql(database: string, from: number, to: number): string {
  const t = `${identifier(database)}.period_closes`;
  return 'SELECT source_partition AS p, toUInt32(period_start) AS s, toUInt32(min(closed_at)) AS at '
    + `FROM ${t} WHERE period_start >= ${dateTimeLiteral(from)} AND period_start < ${dateTimeLiteral(to)} GROUP BY p, s `
    + 'UNION ALL SELECT source_partition AS p, toUInt32(min(period_start)) AS s, toUInt32(argMin(closed_at, period_start)) AS at '
    + `FROM ${t} WHERE period_start >= ${dateTimeLiteral(to)} GROUP BY p`;
}

export interface TimelineInput {
  from: number;
  to: number;
  partitions: number;
  closes: readonly PartitionClose[];
  frontier: Frontier;
  allowedLatenessMs: number;
  /** Allowed lateness + dedup horizon: a period closes when the watermark passes its end by this. */
  closeAfterMs: number;
  now: number;
}

/** The hours of [from, to) in order (pure). */
export function periodTimeline(input: TimelineInput): PeriodStatus[] {
  const { from, to, partitions, frontier, now } = input;
  // Per partition, its closes sorted by period: the first at or after P says when it closed P.
  const byPartition = new Map<number, PartitionClose[]>();
  for (const c of input.closes) {
    if (c.partition < 0 || c.partition >= partitions) continue;
    const list = byPartition.get(c.partition) ?? [];
    list.push(c);
    byPartition.set(c.partition, list);
  }
  for (const list of byPartition.values()) list.sort((a, b) => a.periodStart - b.periodStart);
  const cursor = new Map<number, number>();
  const out: PeriodStatus[] = [];
  for (let p = from; p < to; p += HOUR_MS) {
    let closed = 0;
    let last = 0;
    for (const [partition, list] of byPartition) {
      let i = cursor.get(partition) ?? 0;
      while (i < list.length && list[i].periodStart < p) i++;
      cursor.set(partition, i);
      if (i < list.length) {
        closed++;
        last = Math.max(last, list[i].closedAt);
      }
    }
    const final = closed === partitions;
    const stillToGo = frontier.minWatermark === null ? null : p + HOUR_MS + input.closeAfterMs - frontier.minWatermark;
    out.push({
      periodStart: p,
      maturity: final ? 'final' : maturityOf(p, HOUR_MS, { ...frontier, finalBefore: null }, input.allowedLatenessMs),
      closedPartitions: closed,
      finalAt: final ? last : null,
      expectedFinalAt: final || stillToGo === null ? null : now + Math.max(0, stillToGo),
    });
  }
  return out;
}

export async function queryPeriodCloses(ch: ClickHouseClient, database: string, from: number, to: number): Promise<PartitionClose[]> {
  const rows = await queryRows<{ p: Num; s: Num; at: Num }>(ch, periodClosesSql(database, from, to));
  return rows.map((r) => ({ partition: Number(r.p), periodStart: Number(r.s) * 1000, closedAt: Number(r.at) * 1000 }));
}
