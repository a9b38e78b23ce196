/**
 * Runs a billing export against ClickHouse: the range's status from the ledger's frontier, the
 * late-unbillable events and the lineage, then the rows streamed in JSONEachRow through an
 * ExportEncoder into a writer that may apply backpressure. Memory stays bounded by one response
 * chunk, whatever the number of rows.
 *
 * A range is final when every hour of it is final (closed in every partition): its rows, late
 * events and lineage then all come from the immutable ledger, so the file is byte-identical on
 * every later export, whatever arrives later. Otherwise it is provisional: final hours still come
 * from the ledger, the others from the window rows, each row marked with its maturity.
 *
 * ClickHouse 18.16 has no query parameters: the advertiser id is checked against the contract
 * pattern again and escaped, times are integers turned into literals, identifiers come only from
 * configuration (see server/src/ledger). Periods are whole UTC hours/days by integer arithmetic on
 * the epoch, not toStartOfDay, which follows the server's time zone.
 *
 * Asked for, the breakdown section (export-breakdown.ts) follows the rows, read with the same
 * frontier.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { clickHouseErrorCode, queryRows } from '../clickhouse/index.js';
import type { ExportStatus } from '../contracts/billing-export.js';
import {
  HOUR_MS, maturityOf, periodSourcesSql, queryFinalAt, rolledRowsSql, queryFrontier, queryLateUnbillable, queryLineage, type Frontier,
} from '../ledger/index.js';
import { BreakdownMismatchError, breakdownSql, THROW_IF_CODE } from './export-breakdown.js';
import { ExportEncoder, type ExportMeta } from './export-format.js';
import { maturitySql, rowLineSql } from './export-lines.js';
import { PERIOD_MS, type ExportQuery } from './export-params.js';

export interface ExportResult {
  status: ExportStatus;
  rows: number;
  /** Lines of the breakdown section (0 without one). */
  breakdownRows: number;
  sha256: string;
  totals: ExportEncoder['totals'];
  lateUnbillableEvents: bigint;
}

export interface RunExportOptions {
  /** Called once the status is known, before the first byte (an HTTP route sets its headers here). */
  onStart?: (meta: ExportMeta) => void;
  /** Called every `progressEvery` rows (default 50 000) and once at the end. */
  onProgress?: (rows: number) => void;
  progressEvery?: number;
  now?: () => number;
  /** Bytes gathered before one write (default 64 KiB). */
  chunkBytes?: number;
}

/** Final when every hour of [from, to) is final. */
export function exportStatus(frontier: Pick<Frontier, 'finalBefore'>, to: number): ExportStatus {
  return frontier.finalBefore !== null && frontier.finalBefore >= to ? 'final' : 'provisional';
}

/**
 * The statement's SQL. Rows are rendered by ClickHouse (rowLineSql) in (period, campaign) order:
 * `rest` groups its sources by period and campaign and ends WITH TOTALS (after the rows, an empty
 * line and the same expression over all of them). An hourly statement reads its rolled-up final
 * hours on their own first (`rolled`: already one row per hour and campaign, so no GROUP BY over a
 * month of rows) and adds their sums (`rolledTotals`: immutable, so they agree with the rows); they
 * all precede the hours of `rest`.
 */
export function statementSql(database: string, q: ExportQuery, frontier: Frontier, allowedLatenessMs: number): { rolled: string | null; rolledTotals: string | null; rest: string } {
  const periodMs = PERIOD_MS[q.granularity];
  const maturity = maturitySql(periodMs, frontier, allowedLatenessMs);
  const pq = { advertiserId: q.advertiserId, campaignId: null, from: q.from, to: q.to, periodMs };
  const apart = periodMs === HOUR_MS && frontier.rolledBefore !== null && frontier.rolledBefore > q.from;
  const rest = `SELECT ${rowLineSql(q.format, maturity, true)} AS line FROM (${periodSourcesSql(database, pq, frontier, { rolled: !apart })}) `
    + 'GROUP BY period_s, advertiser_id, campaign_id WITH TOTALS ORDER BY period_s, campaign_id';
  if (!apart) return { rolled: null, rolledTotals: null, rest };
  const rolled = rolledRowsSql(database, pq, frontier);
  return {
    rolled: `SELECT ${rowLineSql(q.format, maturity, false)} AS line FROM (${rolled}) ORDER BY period_s, campaign_id`,
    rolledTotals: `SELECT toString(sum(i)) AS i, toString(sum(s)) AS s, toString(sum(d)) AS d FROM (${rolled})`,
    rest,
  };
}

/**
 * Streams the export into `write` (awaited: a slow reader slows the ClickHouse read down). Rejects
 * on a ClickHouse error or a failed write; the output is then incomplete (no digest trailer).
 */
export async function runExport(
  ch: ClickHouseClient,
  config: TallyConfig,
  q: ExportQuery,
  write: (chunk: string) => Promise<void>,
  opts: RunExportOptions = {},
): Promise<ExportResult> {
  const database = config.clickhouse.database;
  // The frontier first: rows read after it are at least as complete as what it declares final.
  const frontier = await queryFrontier(ch, database, config.partitions);
  const status = exportStatus(frontier, q.to);
  const finalEnd = Math.min(q.to, Math.max(q.from, frontier.finalBefore ?? q.from));
  const meta: ExportMeta = {
    advertiserId: q.advertiserId, from: q.from, to: q.to, granularity: q.granularity, breakdown: q.breakdown, status,
    finalAt: status === 'final' ? (await queryFinalAt(ch, database, q.to - HOUR_MS, config.partitions)) ?? undefined : undefined,
    lateUnbillable: await queryLateUnbillable(ch, database, q.advertiserId, q.from, q.to, frontier.finalBefore),
    lineage: finalEnd > q.from ? await queryLineage(ch, database, q.from, finalEnd) : [],
    maturity: maturityOf(q.from, q.to - q.from, frontier, config.allowedLatenessMs),
    generatedAt: status === 'final' ? undefined : (opts.now ?? Date.now)(),
  };
  const enc = new ExportEncoder(q.format, meta);
  const sql = statementSql(database, q, frontier, config.allowedLatenessMs);
  // The rolled-up hours' sums, read while their rows stream.
  const rolledTotals = sql.rolledTotals === null ? null : queryRows<{ i: string; s: string; d: string }>(ch, sql.rolledTotals);
  rolledTotals?.catch(() => undefined); // awaited below; an early failure must not be unhandled meanwhile
  const chunkBytes = opts.chunkBytes ?? 65_536;
  const every = opts.progressEvery ?? 50_000;
  let nextProgress = every;
  let buffer = '';
  let started = false;
  // Raw bytes straight from ClickHouse through the encoder: Node does no per-row work.
  const stream = async (query: string) => {
    const res = await ch.exec({ query: `${query} FORMAT TabSeparatedRaw` });
    if (!started) {
      started = true;
      opts.onStart?.(meta);
      buffer = enc.begin();
    }
    const body = res.stream;
    body.setEncoding('utf8');
    try {
      for await (const piece of body as AsyncIterable<string>) {
        buffer += enc.feed(piece);
        if (enc.rows >= nextProgress) {
          opts.onProgress?.(enc.rows);
          nextProgress = enc.rows + every;
        }
        if (buffer.length >= chunkBytes) {
          const chunk = buffer;
          buffer = '';
          await write(chunk);
        }
      }
    } finally {
      // Stops the HTTP response from ClickHouse if we leave early (error, client gone).
      if (!body.destroyed) body.destroy();
    }
  };
  // The rolled-up hours' query first.
  for (const query of [sql.rolled, sql.rest]) if (query !== null) await stream(query);
  if (rolledTotals !== null) {
    const [t] = await rolledTotals;
    enc.addToTotals(BigInt(t?.i ?? 0), BigInt(t?.s ?? 0), BigInt(t?.d ?? 0));
  }
  if (q.breakdown !== undefined) {
    buffer += enc.beginBreakdowns();
    try {
      await stream(breakdownSql(database, q, q.breakdown, frontier, config.allowedLatenessMs));
    } catch (err) {
      if (clickHouseErrorCode(err) !== THROW_IF_CODE) throw err;
      throw new BreakdownMismatchError(`the ${q.breakdown.join(', ')} breakdown of a final period of ${q.advertiserId} exceeds its statement row; `
        + 'export without the breakdown, and report it: the stored breakdowns do not match the ledger', { cause: err });
    }
  }
  buffer += enc.end();
  await write(buffer);
  opts.onProgress?.(enc.rows);
  return {
    status, rows: enc.rows, breakdownRows: enc.breakdownRows, sha256: enc.sha256, totals: enc.totals, lateUnbillableEvents: meta.lateUnbillable.events,
  };
}
