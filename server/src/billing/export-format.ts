/**
 * The bytes of a billing export, CSV or JSON, produced row by row (never the whole file in
 * memory) with the totals and the SHA-256 digest accumulated on the way. Pure: no I/O.
 *
 * Deterministic: a final export carries no generation time, rows come in (period, campaign)
 * order, numbers are exact integer strings and spend is formatted from BigInt micros — so the
 * same final period always gives the same bytes and the same digest.
 *
 * CSV (RFC 4180, LF line ends):
 *   # tally billing export                                 comment block (see begin()): status,
 *   # status: final                                        advertiser, period, granularity, final_at,
 *   # …                                                    late_unbillable, lineage (+ generated_at,
 *   period_start,advertiser_id,campaign_id,impressions,spend_micros,spend,duplicates_removed,maturity
 *   2025-11-26T10:00:00Z,adv-1,cmp-1,1200,1500000,1.500000,3,final
 *   total,adv-1,,1200,1500000,1.500000,3,final             provisional only)
 *   # sha256: <hex SHA-256 of every byte before this line>
 *
 * JSON: {"status", "advertiser_id", "from", "to", "granularity", ["final_at"], "late_unbillable",
 *   "lineage", ["generated_at" provisional only], "rows": [...], "totals": {...}, "sha256"}. The
 *   digest is over the canonical form: JSON.stringify of the header object (the fields above before
 *   rows, without generated_at), of each row and of the totals, each followed by "\n" — the file
 *   holds those exact serializations, so a reader recomputes it by re-serializing what it parsed.
 */
import crypto from 'node:crypto';
import { leastMature, type Maturity } from '../contracts/maturity.js';
import { formatMicros } from '../contracts/micros.js';
import type { LateUnbillable, Lineage } from '../ledger/index.js';
import { isoUtc, type BillingFormat, type BillingGranularity } from './export-params.js';

export type ExportStatus = 'final' | 'provisional';

export interface ExportMeta {
  advertiserId: string;
  from: number;
  to: number;
  granularity: BillingGranularity;
  status: ExportStatus;
  /** Final exports: when the last period of the range became final (epoch ms; immutable). */
  finalAt?: number;
  /** Events of this advertiser that arrived in [from, to) too late for their own (closed) period: not billed. */
  lateUnbillable: LateUnbillable;
  /** Per partition, the Kafka offset ranges the final periods' numbers came from. */
  lineage: Lineage[];
  /** Epoch ms; written only in provisional exports (a final one must not change between runs). */
  generatedAt?: number;
}

/** One aggregated (period, campaign) as read from ClickHouse. */
export interface ExportInputRow {
  periodStartMs: number;
  campaignId: string;
  impressions: bigint;
  spendMicros: bigint;
  duplicates: bigint;
  maturity: Maturity;
}

export interface ExportRow {
  period_start: string;
  advertiser_id: string;
  campaign_id: string;
  impressions: string;
  spend_micros: string;
  spend: string;
  duplicates_removed: string;
  maturity: Maturity;
}

export interface ExportTotals {
  impressions: string;
  spend_micros: string;
  spend: string;
  duplicates_removed: string;
  /** The least settled row's. */
  maturity: Maturity;
}

/** The JSON statement's fields before its rows (generated_at aside); the digest covers them. */
export interface JsonExportHeader {
  status: ExportStatus;
  advertiser_id: string;
  from: string;
  to: string;
  granularity: BillingGranularity;
  final_at?: string;
  late_unbillable: { events: string; periods: Array<{ period_start: string; events: string }> };
  lineage: Array<{
    partition: number;
    source: { topic: string; first_offset: number | null; close_offset: number };
    repartition: { topic: string; first_offset: number | null; close_offset: number };
  }>;
}

export const CSV_COLUMNS: ReadonlyArray<keyof ExportRow> = [
  'period_start', 'advertiser_id', 'campaign_id', 'impressions', 'spend_micros', 'spend', 'duplicates_removed', 'maturity',
];

/** One partition's lineage as a CSV comment: `topic/partition [first, close)` for each input. */
export function lineageText(l: Lineage): string {
  const range = (r: Lineage['source']) => `${r.topic}/${l.partition} [${r.firstOffset ?? 'none'}, ${r.closeOffset})`;
  return `${range(l.source)} ${range(l.repartition)}`;
}

/**
 * One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF (quotes doubled), or
 * starts with # (so no data line can pass for a comment line) or a space.
 */
export function csvField(value: string): string {
  if (/[",\r\n]/.test(value) || value.startsWith('#') || value.startsWith(' ') || value.endsWith(' ')) {
    return `"${value.replaceAll('"', '""')}"`;
  }
  return value;
}

export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\n`;
}

export function contentType(format: BillingFormat): string {
  return format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8';
}

export class ExportEncoder {
  private readonly hash = crypto.createHash('sha256');
  private impressions = 0n;
  private spendMicros = 0n;
  private duplicates = 0n;
  private maturity: Maturity;
  private rowCount = 0;
  private digest: string | undefined;
  private lastKey: string | undefined;

  constructor(readonly format: BillingFormat, readonly meta: ExportMeta) {
    this.maturity = meta.status === 'final' ? 'final' : 'provisional';
  }

  /** The opening bytes (CSV comment block and header, or the JSON object up to the rows array). */
  begin(): string {
    const m = this.meta;
    if (this.format === 'csv') {
      const lines = [
        '# tally billing export',
        `# status: ${m.status}`,
        `# advertiser: ${m.advertiserId}`,
        `# period: ${isoUtc(m.from)}/${isoUtc(m.to)}`,
        `# granularity: ${m.granularity}`,
        ...(m.finalAt === undefined ? [] : [`# final_at: ${new Date(m.finalAt).toISOString()}`]),
        `# late_unbillable: ${m.lateUnbillable.events.toString()}`,
        ...m.lateUnbillable.periods.map((p) => `# late_unbillable_from: ${isoUtc(p.periodStart)} ${p.events.toString()}`),
        ...m.lineage.map((l) => `# lineage: ${lineageText(l)}`),
      ];
      if (m.status !== 'final' && m.generatedAt !== undefined) lines.push(`# generated_at: ${new Date(m.generatedAt).toISOString()}`);
      return this.csv(`${lines.join('\n')}\n${csvLine(CSV_COLUMNS)}`);
    }
    const header = this.jsonHeader();
    this.hash.update(`${JSON.stringify(header)}\n`);
    const generated = m.status !== 'final' && m.generatedAt !== undefined ? `,"generated_at":${JSON.stringify(new Date(m.generatedAt).toISOString())}` : '';
    return `${JSON.stringify(header).slice(0, -1)}${generated},"rows":[`;
  }

  /** The bytes of one row; rows must come in strictly increasing (period, campaign) order. */
  row(r: ExportInputRow): string {
    const key = `${String(r.periodStartMs).padStart(16, '0')}|${r.campaignId}`;
    if (this.lastKey !== undefined && key <= this.lastKey) throw new Error(`export rows out of order: ${key} after ${this.lastKey}`);
    this.lastKey = key;
    this.impressions += r.impressions;
    this.spendMicros += r.spendMicros;
    this.duplicates += r.duplicates;
    this.maturity = leastMature(this.maturity, r.maturity);
    const row: ExportRow = {
      period_start: isoUtc(r.periodStartMs),
      advertiser_id: this.meta.advertiserId,
      campaign_id: r.campaignId,
      impressions: r.impressions.toString(),
      spend_micros: r.spendMicros.toString(),
      spend: formatMicros(r.spendMicros),
      duplicates_removed: r.duplicates.toString(),
      maturity: r.maturity,
    };
    const first = this.rowCount === 0;
    this.rowCount++;
    if (this.format === 'csv') return this.csv(csvLine(CSV_COLUMNS.map((c) => row[c])));
    const text = JSON.stringify(row);
    this.hash.update(`${text}\n`);
    return `${first ? '\n' : ',\n'}${text}`;
  }

  /** The closing bytes: totals and the digest trailer. */
  end(): string {
    const t = this.totals;
    let out: string;
    if (this.format === 'csv') {
      out = this.csv(csvLine(['total', this.meta.advertiserId, '', t.impressions, t.spend_micros, t.spend, t.duplicates_removed, t.maturity]));
      this.digest = this.hash.digest('hex');
      out += `# sha256: ${this.digest}\n`;
    } else {
      const text = JSON.stringify(t);
      this.hash.update(`${text}\n`);
      this.digest = this.hash.digest('hex');
      out = `${this.rowCount === 0 ? '' : '\n'}],"totals":${text},"sha256":"${this.digest}"}\n`;
    }
    return out;
  }

  get rows(): number {
    return this.rowCount;
  }

  get totals(): ExportTotals {
    return {
      impressions: this.impressions.toString(),
      spend_micros: this.spendMicros.toString(),
      spend: formatMicros(this.spendMicros),
      duplicates_removed: this.duplicates.toString(),
      maturity: this.maturity,
    };
  }

  /** Hex SHA-256, available after end(). */
  get sha256(): string {
    if (this.digest === undefined) throw new Error('sha256 is known only after end()');
    return this.digest;
  }

  private jsonHeader(): JsonExportHeader {
    const m = this.meta;
    return {
      status: m.status,
      advertiser_id: m.advertiserId,
      from: isoUtc(m.from),
      to: isoUtc(m.to),
      granularity: m.granularity,
      ...(m.finalAt === undefined ? {} : { final_at: new Date(m.finalAt).toISOString() }),
      late_unbillable: {
        events: m.lateUnbillable.events.toString(),
        periods: m.lateUnbillable.periods.map((p) => ({ period_start: isoUtc(p.periodStart), events: p.events.toString() })),
      },
      lineage: m.lineage.map((l) => ({
        partition: l.partition,
        source: { topic: l.source.topic, first_offset: l.source.firstOffset, close_offset: l.source.closeOffset },
        repartition: { topic: l.repartition.topic, first_offset: l.repartition.firstOffset, close_offset: l.repartition.closeOffset },
      })),
    };
  }

  private csv(text: string): string {
    this.hash.update(text);
    return text;
  }
}
