/**
 * `tally reconcile`: recomputes the final billing periods of a range from the raw Kafka records and
 * compares them with the ledger, row by row. Deliberately separate and simple: it shares no code
 * with the aggregator's core (no dedup index, no windows, no watermarks), only the public contract:
 *
 *   - an impression is counted at its home partition, murmur2(impression_id) % partitions; a record
 *     read elsewhere was forwarded there on `aggregator-repartition` (header `tally-forwarded-from` =
 *     its original partition:offset; contracts/repartition-record.ts);
 *   - a record that could not be counted is on the dead-letter topic, whose headers name the original
 *     record (source-topic / source-partition / source-offset; contracts/dead-letter.ts);
 *   - the first copy of an impression id counts; later copies are duplicates.
 *
 * Two things are compared with the recomputation: the ledger (billing_ledger, summed over
 * partitions) and what statements actually serve for those hours (its roll-up, billing_statement,
 * where a period is rolled up): a difference in either is named with its source.
 *
 * It reads each partition of `impressions` and of `aggregator-repartition` up to the aggregator's
 * committed offsets (everything before them has its outcome committed, dead letters included), and
 * the whole dead-letter topic. Records still in retention only: a period whose records are gone
 * cannot be recomputed (it shows as missing).
 */
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../clickhouse/index.js';
import { dateTimeLiteral, identifier, queryRows, stringLiteral, uintLiteral } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { DLQ_HEADER, headerValue } from '../contracts/dead-letter.js';
import { ID_PATTERN } from '../contracts/ids.js';
import { FORWARDED_FROM_HEADER } from '../contracts/repartition-record.js';
import { homePartition } from '../impression/index.js';
import { Consumer } from '../kafka/index.js';
import { HOUR_MS, periodRowsSql, queryFrontier } from '../ledger/index.js';
import { readTopicToEnd } from './dlq-reader.js';

export interface ReconcileDifference {
  /** ledger: billing_ledger; statement: the rows statements read (the roll-up, or the ledger before it). */
  source: 'ledger' | 'statement';
  periodStart: number;
  advertiserId: string;
  campaignId: string;
  recomputed: { impressions: bigint; spendMicros: bigint } | null;
  /** What the source holds (null: no such row). */
  billed: { impressions: bigint; spendMicros: bigint } | null;
}

export interface ReconcileResult {
  from: number;
  /** End of the reconciled part: `to`, or where finality ends. */
  to: number;
  periods: number;
  ledgerRows: number;
  recordsRead: number;
  differences: ReconcileDifference[];
  ok: boolean;
}

interface Counted {
  ts: number;
  advertiserId: string;
  campaignId: string;
  costMicros: number;
}

/** The contract's event, read simply: null when the record is not a countable impression. */
function readEvent(value: Buffer | null | undefined): (Counted & { id: string }) | null {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(value?.toString('utf8') ?? '') as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  const { impression_id: id, advertiser_id: adv, campaign_id: cmp } = o;
  if (typeof id !== 'string' || typeof adv !== 'string' || typeof cmp !== 'string' || !ID_PATTERN.test(id) || !ID_PATTERN.test(adv) || !ID_PATTERN.test(cmp)) return null;
  const ts = typeof o.ts === 'number' ? o.ts : typeof o.ts === 'string' ? Date.parse(o.ts) : NaN;
  const cost = o.cost_micros === undefined ? 0 : o.cost_micros;
  if (!Number.isSafeInteger(ts) || typeof cost !== 'number' || !Number.isSafeInteger(cost)) return null;
  return { id, ts, advertiserId: adv, campaignId: cmp, costMicros: cost };
}

const coord = (topic: string, partition: number, offset: number) => `${topic}|${partition}|${offset}`;
const rowKey = (period: number, adv: string, cmp: string) => `${period}|${adv}|${cmp}`;

export async function reconcile(config: TallyConfig, ch: ClickHouseClient, from: number, to: number): Promise<ReconcileResult> {
  const db = config.clickhouse.database;
  const frontier = await queryFrontier(ch, db, config.partitions);
  const end = Math.min(to, Math.max(from, frontier.finalBefore ?? from));
  const result: ReconcileResult = { from, to: end, periods: Math.max(0, (end - from) / HOUR_MS), ledgerRows: 0, recordsRead: 0, differences: [], ok: true };
  if (end <= from) return result;

  // The ledger, identical re-inserts collapsed, summed over partitions.
  const ledger = new Map<string, { impressions: bigint; spendMicros: bigint }>();
  const ledgerRows = await queryRows<{ p: string | number; adv: string; cmp: string; i: string | number; s: string | number }>(ch,
    'SELECT toUInt32(period_start) AS p, advertiser_id AS adv, campaign_id AS cmp, any(impressions) AS i, any(spend_micros) AS s '
    + `FROM ${identifier(db)}.billing_ledger WHERE period_start >= ${dateTimeLiteral(from)} AND period_start < ${dateTimeLiteral(end)} `
    + 'GROUP BY period_start, advertiser_id, campaign_id, source_partition');
  for (const r of ledgerRows) {
    const key = rowKey(Number(r.p) * 1000, r.adv, r.cmp);
    const held = ledger.get(key) ?? { impressions: 0n, spendMicros: 0n };
    ledger.set(key, { impressions: held.impressions + BigInt(r.i), spendMicros: held.spendMicros + BigInt(r.s) });
  }
  result.ledgerRows = ledgerRows.length;
  // What statements serve for the same hours.
  const served = new Map<string, { impressions: bigint; spendMicros: bigint }>();
  const statementRows = await queryRows<{ period_s: string | number; advertiser_id: string; campaign_id: string; impressions: string | number; spend_micros: string | number }>(ch,
    periodRowsSql(db, { advertiserId: null, campaignId: null, from, to: end, periodMs: HOUR_MS }, frontier, null));
  for (const r of statementRows) {
    served.set(rowKey(Number(r.period_s) * 1000, r.advertiser_id, r.campaign_id), { impressions: BigInt(r.impressions), spendMicros: BigInt(r.spend_micros) });
  }

  // Every record whose outcome the aggregator committed, and the dead letters among them.
  const { impressions, repartition, dlq } = config.topics;
  const committed = await committedOffsets(config, [impressions, repartition]);
  const dead = new Set<string>();
  await readTopicToEnd(config.kafka.brokers, dlq, (m) => {
    const t = headerValue(m, DLQ_HEADER.sourceTopic);
    const p = Number(headerValue(m, DLQ_HEADER.sourcePartition));
    const o = Number(headerValue(m, DLQ_HEADER.sourceOffset));
    if (t !== undefined) dead.add(coord(t, p, o));
  }, { timeoutMs: 120_000 });

  // Counted at home: records read on their home partition, and forwarded copies (named by their original).
  const firstCopy = new Map<string, Counted>();
  const take = (id: string, c: Counted) => {
    if (!firstCopy.has(id)) firstCopy.set(id, c);
  };
  await readTopicToEnd(config.kafka.brokers, impressions, (m) => {
    result.recordsRead++;
    const e = readEvent(m.value);
    if (e === null || homePartition(e.id, config.partitions) !== m.partition || dead.has(coord(impressions, m.partition, m.offset))) return;
    take(e.id, e);
  }, { until: committed.get(impressions), timeoutMs: 600_000 });
  await readTopicToEnd(config.kafka.brokers, repartition, (m) => {
    result.recordsRead++;
    const from = headerValue(m, FORWARDED_FROM_HEADER);
    if (from === undefined) return; // a watermark marker
    const [p, o] = from.split(':').map(Number);
    const e = readEvent(m.value);
    if (e !== null && !dead.has(coord(impressions, p, o))) take(e.id, e);
  }, { until: committed.get(repartition), timeoutMs: 600_000 });

  const recomputed = new Map<string, { impressions: bigint; spendMicros: bigint }>();
  for (const c of firstCopy.values()) {
    const period = c.ts - (((c.ts % HOUR_MS) + HOUR_MS) % HOUR_MS);
    if (period < from || period >= end) continue;
    const key = rowKey(period, c.advertiserId, c.campaignId);
    const held = recomputed.get(key) ?? { impressions: 0n, spendMicros: 0n };
    recomputed.set(key, { impressions: held.impressions + 1n, spendMicros: held.spendMicros + BigInt(c.costMicros) });
  }

  for (const [source, held] of [['ledger', ledger], ['statement', served]] as const) {
    for (const key of [...new Set([...held.keys(), ...recomputed.keys()])].sort()) {
      const a = recomputed.get(key) ?? null;
      const b = held.get(key) ?? null;
      if (a !== null && b !== null && a.impressions === b.impressions && a.spendMicros === b.spendMicros) continue;
      const [p, adv, cmp] = key.split('|');
      result.differences.push({ source, periodStart: Number(p), advertiserId: adv, campaignId: cmp, recomputed: a, billed: b });
    }
  }
  result.ok = result.differences.length === 0;
  return result;
}

/** Records the run in `reconciliations` (what the pipeline page shows as the last reconciliation). */
export async function recordReconciliation(ch: ClickHouseClient, database: string, r: ReconcileResult, ranAt: number): Promise<void> {
  const detail = r.differences.slice(0, 20).map(formatDifference).join('\n');
  await ch.command({
    query: `INSERT INTO ${identifier(database)}.reconciliations (ran_at, from_time, to_time, periods, ledger_rows, differences, detail) VALUES `
      + `(${dateTimeLiteral(ranAt)}, ${dateTimeLiteral(r.from)}, ${dateTimeLiteral(r.to)}, ${uintLiteral(r.periods)}, ${uintLiteral(r.ledgerRows)}, `
      + `${uintLiteral(r.differences.length)}, ${stringLiteral(detail)})`,
  });
}

export function formatDifference(d: ReconcileDifference): string {
  const show = (x: ReconcileDifference['billed']) => (x === null ? 'missing' : `${x.impressions} impressions, ${x.spendMicros} micros`);
  return `${new Date(d.periodStart).toISOString()} ${d.advertiserId} ${d.campaignId}: ${d.source} ${show(d.billed)}; recomputed from Kafka ${show(d.recomputed)}`;
}

/** The aggregator group's committed offsets (read without joining the group). */
async function committedOffsets(config: TallyConfig, topics: string[]): Promise<Map<string, Map<number, number>>> {
  const c = new Consumer({
    brokers: config.kafka.brokers, groupId: config.groups.aggregator, clientId: `tally-reconcile-${crypto.randomBytes(3).toString('hex')}`, isolation: 'read_committed',
  });
  await c.connect();
  try {
    const request = topics.flatMap((topic) => Array.from({ length: config.partitions }, (_, partition) => ({ topic, partition })));
    const tps = await c.committed(request, 30_000);
    const out = new Map<string, Map<number, number>>(topics.map((t) => [t, new Map()]));
    for (const tp of tps) out.get(tp.topic)?.set(tp.partition, Math.max(0, tp.offset));
    return out;
  } finally {
    await c.disconnect();
  }
}
