/**
 * Runs a billing export against ClickHouse: the period's status (partition_watermarks FINAL), the
 * too_late dead letters (dead_letters FINAL), then the rows (impression_counts FINAL) streamed in
 * JSONEachRow through an ExportEncoder into a writer that may apply backpressure. Memory stays
 * bounded by one response chunk, whatever the number of rows.
 *
 * ClickHouse 18.16 has no query parameters: the advertiser id is checked against the contract
 * pattern again and escaped with stringLiteral, times are integers turned into literals by
 * dateTimeLiteral, identifiers come only from configuration. Periods are whole UTC hours/days by
 * integer arithmetic on the epoch (intDiv(toUInt32(window_start), 3600) * 3600), not
 * toStartOfDay, which follows the server's time zone.
 */
import type { ClickHouseClient, Row } from '@clickhouse/client';
import { dateTimeLiteral, identifier, queryRows, stringLiteral, uintLiteral } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { InvalidArgumentError } from '../errors.js';
import { ID_PATTERN } from '../api/query-params.js';
import { parseUInt64 } from '../contracts/micros.js';
import { ExportEncoder, type ExportMeta, type ExportStatus } from './export-format.js';
import { PERIOD_MS, type ExportQuery } from './export-params.js';

function idLiteral(id: string): string {
  if (!ID_PATTERN.test(id)) throw new InvalidArgumentError(`not a valid id: ${JSON.stringify(id)}`);
  return stringLiteral(id);
}

/** The rows query: one row per (period, campaign) of windows starting in [from, to), in output order. */
export function exportRowsSql(database: string, q: Pick<ExportQuery, 'advertiserId' | 'from' | 'to' | 'granularity'>): string {
  const p = uintLiteral(PERIOD_MS[q.granularity] / 1000);
  return `SELECT intDiv(toUInt32(window_start), ${p}) * ${p} AS period_s, campaign_id, `
    + 'sum(impressions) AS impressions, sum(spend_micros) AS spend_micros, sum(duplicates) AS duplicates '
    + `FROM ${identifier(database)}.impression_counts FINAL `
    + `WHERE advertiser_id = ${idLiteral(q.advertiserId)} AND window_start >= ${dateTimeLiteral(q.from)} AND window_start < ${dateTimeLiteral(q.to)} `
    + 'GROUP BY period_s, campaign_id ORDER BY period_s, campaign_id';
}

export function tooLateSql(database: string, q: Pick<ExportQuery, 'advertiserId' | 'from' | 'to'>): string {
  return `SELECT count() AS n FROM ${identifier(database)}.dead_letters FINAL `
    + `WHERE reason = 'too_late' AND advertiser_id = ${idLiteral(q.advertiserId)} `
    + `AND event_ts >= ${dateTimeLiteral(q.from)} AND event_ts < ${dateTimeLiteral(q.to)}`;
}

export interface PeriodStatus {
  status: ExportStatus;
  /** Lowest committed watermark over all source partitions (epoch ms); null if one has none yet. */
  minWatermarkMs: number | null;
  /** Watermark every partition must reach for the period to be final: to + allowed lateness. */
  finalAtMs: number;
}

/**
 * Final only if every source partition 0..partitions-1 has a watermark in partition_watermarks
 * and each one is at or beyond `to` + TALLY_ALLOWED_LATENESS_MS.
 */
export function periodStatus(watermarks: ReadonlyArray<{ source_partition: number; watermark_ms: number }>, partitions: number, to: number, allowedLatenessMs: number): PeriodStatus {
  const finalAtMs = to + allowedLatenessMs;
  const byPartition = new Map<number, number>();
  for (const w of watermarks) byPartition.set(w.source_partition, Math.max(w.watermark_ms, byPartition.get(w.source_partition) ?? -Infinity));
  let min: number | null = null;
  for (let p = 0; p < partitions; p++) {
    const wm = byPartition.get(p);
    if (wm === undefined) return { status: 'provisional', minWatermarkMs: null, finalAtMs };
    min = min === null ? wm : Math.min(min, wm);
  }
  return { status: min !== null && min >= finalAtMs ? 'final' : 'provisional', minWatermarkMs: min, finalAtMs };
}

export async function queryPeriodStatus(ch: ClickHouseClient, config: TallyConfig, to: number): Promise<PeriodStatus> {
  const rows = await queryRows<{ source_partition: number | string; watermark_ms: number | string }>(ch,
    `SELECT source_partition, watermark_ms FROM ${identifier(config.clickhouse.database)}.partition_watermarks FINAL`);
  return periodStatus(rows.map((r) => ({ source_partition: Number(r.source_partition), watermark_ms: Number(r.watermark_ms) })),
    config.partitions, to, config.allowedLatenessMs);
}

export async function queryTooLate(ch: ClickHouseClient, database: string, q: ExportQuery): Promise<bigint> {
  const rows = await queryRows<{ n: string | number }>(ch, tooLateSql(database, q));
  return parseUInt64(rows[0]?.n ?? 0, 'too_late count');
}

export interface ExportResult {
  status: ExportStatus;
  rows: number;
  sha256: string;
  totals: ExportEncoder['totals'];
  tooLateEvents: bigint;
}

export interface RunExportOptions {
  /** Called once the status is known, before the first byte (an HTTP route sets its headers here). */
  onStart?: (meta: ExportMeta, status: PeriodStatus) => void;
  /** Called every `progressEvery` rows and once at the end. */
  onProgress?: (rows: number) => void;
  progressEvery?: number;
  now?: () => number;
  /** Bytes gathered before one write (default 64 KiB). */
  chunkBytes?: number;
}

interface ClickHouseExportRow {
  period_s: number | string;
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
  // Status first: rows read after it are at least as complete as the watermarks that made it final.
  const status = await queryPeriodStatus(ch, config, q.to);
  const tooLateEvents = await queryTooLate(ch, database, q);
  const meta: ExportMeta = {
    advertiserId: q.advertiserId, from: q.from, to: q.to, granularity: q.granularity, status: status.status, tooLateEvents,
    generatedAt: status.status === 'final' ? undefined : (opts.now ?? Date.now)(),
  };
  const enc = new ExportEncoder(q.format, meta);
  const rs = await ch.query({ query: exportRowsSql(database, q), format: 'JSONEachRow' });
  opts.onStart?.(meta, status);
  const chunkBytes = opts.chunkBytes ?? 65_536;
  const every = opts.progressEvery ?? 50_000;
  let buffer = enc.begin();
  const stream = rs.stream<ClickHouseExportRow>();
  try {
    for await (const rows of stream as AsyncIterable<Array<Row<ClickHouseExportRow, 'JSONEachRow'>>>) {
      for (const row of rows) {
        const r = row.json();
        const periodS = Number(r.period_s);
        if (!Number.isSafeInteger(periodS) || periodS < 0) throw new TypeError(`bad period_s from ClickHouse: ${JSON.stringify(r.period_s)}`);
        buffer += enc.row({
          periodStartMs: periodS * 1000,
          campaignId: String(r.campaign_id),
          impressions: parseUInt64(r.impressions, 'impressions'),
          spendMicros: parseUInt64(r.spend_micros, 'spend_micros'),
          duplicates: parseUInt64(r.duplicates, 'duplicates'),
        });
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
  return { status: status.status, rows: enc.rows, sha256: enc.sha256, totals: enc.totals, tooLateEvents };
}
