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
 */
import type { ClickHouseClient, Row } from '@clickhouse/client';
import type { TallyConfig } from '../config/index.js';
import {
  HOUR_MS, maturityOf, periodRowsSql, queryFinalAt, queryFrontier, queryLateUnbillable, queryLineage, toPeriodRow, type Frontier,
} from '../ledger/index.js';
import { ExportEncoder, type ExportMeta, type ExportStatus } from './export-format.js';
import { PERIOD_MS, type ExportQuery } from './export-params.js';

export interface ExportResult {
  status: ExportStatus;
  rows: number;
  sha256: string;
  totals: ExportEncoder['totals'];
  lateUnbillableEvents: bigint;
}

export interface RunExportOptions {
  /** Called once the status is known, before the first byte (an HTTP route sets its headers here). */
  onStart?: (meta: ExportMeta) => void;
  /** Called every `progressEvery` rows and once at the end. */
  onProgress?: (rows: number) => void;
  progressEvery?: number;
  now?: () => number;
  /** Bytes gathered before one write (default 64 KiB). */
  chunkBytes?: number;
}

/** Final when every hour of [from, to) is final. */
export function exportStatus(frontier: Frontier, to: number): ExportStatus {
  return frontier.finalBefore !== null && frontier.finalBefore >= to ? 'final' : 'provisional';
}

interface ClickHouseExportRow {
  period_s: number | string;
  advertiser_id: string;
  campaign_id: string;
  impressions: number | string;
  spend_micros: number | string;
  duplicates: number | string;
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
    advertiserId: q.advertiserId, from: q.from, to: q.to, granularity: q.granularity, status,
    finalAt: status === 'final' ? (await queryFinalAt(ch, database, q.to - HOUR_MS, config.partitions)) ?? undefined : undefined,
    lateUnbillable: await queryLateUnbillable(ch, database, q.advertiserId, q.from, q.to, frontier.finalBefore),
    lineage: finalEnd > q.from ? await queryLineage(ch, database, q.from, finalEnd) : [],
    generatedAt: status === 'final' ? undefined : (opts.now ?? Date.now)(),
  };
  const enc = new ExportEncoder(q.format, meta);
  const periodMs = PERIOD_MS[q.granularity];
  const sql = periodRowsSql(database, { advertiserId: q.advertiserId, campaignId: null, from: q.from, to: q.to, periodMs }, frontier.finalBefore, null);
  const rs = await ch.query({ query: sql, format: 'JSONEachRow' });
  opts.onStart?.(meta);
  const chunkBytes = opts.chunkBytes ?? 65_536;
  const every = opts.progressEvery ?? 50_000;
  let buffer = enc.begin();
  const stream = rs.stream<ClickHouseExportRow>();
  try {
    for await (const rows of stream as AsyncIterable<Array<Row<ClickHouseExportRow, 'JSONEachRow'>>>) {
      for (const row of rows) {
        const r = toPeriodRow(row.json());
        buffer += enc.row({ ...r, periodStartMs: r.periodStart, maturity: maturityOf(r.periodStart, periodMs, frontier, config.allowedLatenessMs) });
        if (enc.rows % every === 0) opts.onProgress?.(enc.rows);
        if (buffer.length >= chunkBytes) {
          const chunk = buffer;
          buffer = '';
          await write(chunk);
        }
      }
    }
  } finally {
    // Stops the HTTP response from ClickHouse if we leave early (error, client gone).
    if (!stream.destroyed) stream.destroy();
  }
  buffer += enc.end();
  await write(buffer);
  opts.onProgress?.(enc.rows);
  return { status, rows: enc.rows, sha256: enc.sha256, totals: enc.totals, lateUnbillableEvents: meta.lateUnbillable.events };
}
