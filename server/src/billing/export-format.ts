/**
 * The bytes of a billing export, CSV or JSON, with the SHA-256 digest accumulated on the way.
 * Rows are rendered by ClickHouse (export-lines.ts: one line a row, exactly the bytes below) and
 * streamed through this encoder, which adds the header, the separators, the totals and the trailer;
 * so a month of 720k rows costs Node no per-row work. Pure: no I/O.
 *
 * Deterministic: a final export carries no generation time, rows come in (period, campaign) order,
 * numbers are exact integer strings and spend is formatted from integer micros — so the same final
 * period always gives the same bytes and the same digest.
 *
 * CSV (RFC 4180, LF line ends):
 *   # tally billing export                                 comment block (see begin()): status,
 *   # status: final                                        advertiser, period, granularity,
 *   # …                                                    [breakdown], final_at, late_unbillable,
 *   period_start,advertiser_id,campaign_id,impressions,spend_micros,spend,duplicates_removed,maturity
 *   2025-11-26T10:00:00Z,adv-1,cmp-1,1200,1500000,1.500000,3,final
 *   total,adv-1,,1200,1500000,1.500000,3,final             lineage (+ generated_at, provisional only)
 *   # section: breakdowns                                  only when a breakdown was asked for: per
 *   period_start,advertiser_id,campaign_id,dimension,value,impressions,spend_micros,spend,maturity
 *   2025-11-26T10:00:00Z,adv-1,cmp-1,country,DE,700,900000,0.900000,final      row and dimension,
 *   2025-11-26T10:00:00Z,adv-1,cmp-1,country,FR,500,600000,0.600000,final      values summing to it
 *   # sha256: <hex SHA-256 of every byte before this line>
 * Without a breakdown the file is what it was before breakdowns existed, byte for byte.
 *
 * JSON (contracts/billing-export.ts, JsonExport): {"status", "advertiser_id", "from", "to",
 *   "granularity", ["breakdown"], ["final_at"], "late_unbillable", "lineage", ["generated_at"
 *   provisional only], "rows": [...], "totals": {...}, ["breakdowns": [...]], "sha256"}. The digest
 *   is over the canonical form: JSON.stringify of the header object (the fields above before rows,
 *   without generated_at), of each row, of the totals and of each breakdown row, each followed by
 *   "\n" — the file holds those exact serializations, so a reader recomputes it by re-serializing
 *   what it parsed.
 *
 * Fields are written by the rules of export-lines.ts (ids verbatim, CSV text fields neutralised
 * against spreadsheet formulas). Comment lines are one cell starting with '#': the advertiser id in
 * `# advertiser:` can start no cell of its own (no comma, semicolon, quote or line break in an id;
 * begin() checks the pattern), and `# breakdown:` names configured dimensions only. The digest is
 * over the bytes served, so it covers the neutralised fields as they are.
 */
import crypto from 'node:crypto';
import type {
  BillingFormat, BillingGranularity, ExportRow, ExportStatus, ExportTotals, JsonExportHeader,
} from '../contracts/billing-export.js';
import type { Dimension } from '../contracts/dimensions.js';
import { ID_PATTERN } from '../contracts/ids.js';
import type { Maturity } from '../contracts/maturity.js';
import { formatMicros } from '../contracts/micros.js';
import type { LateUnbillable, Lineage } from '../ledger/index.js';
import { BREAKDOWN_CSV_COLUMNS, CSV_COLUMNS, csvLine } from './export-lines.js';
import { isoUtc } from './export-params.js';

export interface ExportMeta {
  advertiserId: string;
  from: number;
  to: number;
  granularity: BillingGranularity;
  /** The dimensions of the breakdown section, in the order asked; undefined: no section. */
  breakdown?: readonly Dimension[];
  status: ExportStatus;
  /** Final exports: when the last period of the range became final (epoch ms; immutable). */
  finalAt?: number;
  /** Events of this advertiser that arrived in [from, to) too late for their own (closed) period: not billed. */
  lateUnbillable: LateUnbillable;
  /** Per partition, the Kafka offset ranges the final periods' numbers came from. */
  lineage: Lineage[];
  /** The statement's maturity: its least settled period's. */
  maturity: Maturity;
  /** Epoch ms; written only in provisional exports (a final one must not change between runs). */
  generatedAt?: number;
}

export function contentType(format: BillingFormat): string {
  return format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8';
}

/** One partition's lineage as a CSV comment: `topic/partition [first, close)` for each input. */
export function lineageText(l: Lineage): string {
  const range = (r: Lineage['source']) => `${r.topic}/${l.partition} [${r.firstOffset ?? 'none'}, ${r.closeOffset})`;
  return `${range(l.source)} ${range(l.repartition)}`;
}

/**
 * Builds the file around the lines ClickHouse renders. feed() takes ClickHouse's TabSeparatedRaw
 * output of a query … WITH TOTALS as it arrives: one line a row, an empty line, then the totals
 * line (the same expression over all rows). First the statement's rows (rowLineSql), whose totals
 * line's sums become the totals; then, when the statement has a breakdown, after beginBreakdowns(),
 * its lines (breakdownLineSql), whose totals line only marks their end.
 */
export class ExportEncoder {
  private readonly hash = crypto.createHash('sha256');
  private section: 'rows' | 'breakdowns' = 'rows';
  private readonly lineCount = { rows: 0, breakdowns: 0 };
  /** Output not written yet: from the last newline on (a line's newline waits to see if the empty line follows). */
  private carry = '';
  /** The current section's lines are done; its totals line is arriving. */
  private inTotals = false;
  private totalsLine = '';
  /** Some line of the current section was written. */
  private started = false;
  private digest: string | undefined;
  private totalsValue: ExportTotals | undefined;
  /** Sums of rows whose query had no totals line (the rolled-up hours), added to the totals line's. */
  private extra = { impressions: 0n, spend: 0n, duplicates: 0n };

  constructor(readonly format: BillingFormat, readonly meta: ExportMeta) {}

  /** The opening bytes (CSV comment block and header, or the JSON object up to the rows array). */
  begin(): string {
    const m = this.meta;
    if (this.format === 'csv') {
      // The one client-chosen value in a comment line: it must not be able to start a cell there.
      if (!ID_PATTERN.test(m.advertiserId)) throw new Error(`not a contract id: ${JSON.stringify(m.advertiserId)}`);
      const lines = [
        '# tally billing export',
        `# status: ${m.status}`,
        `# advertiser: ${m.advertiserId}`,
        `# period: ${isoUtc(m.from)}/${isoUtc(m.to)}`,
        `# granularity: ${m.granularity}`,
        ...(m.breakdown === undefined ? [] : [`# breakdown: ${m.breakdown.join(',')}`]),
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

  /**
   * The bytes of a piece of ClickHouse's output. A line's closing newline is held back until the
   * next piece shows whether the empty line (lines done, totals next) follows it.
   */
  feed(chunk: string): string {
    if (this.inTotals) {
      this.totalsLine += chunk;
      return '';
    }
    const buf = this.carry + chunk;
    if (!this.started && buf.startsWith('\n')) return this.toTotals('', buf.slice(1)); // no lines at all
    const boundary = buf.indexOf('\n\n');
    if (boundary >= 0) return this.toTotals(buf.slice(0, boundary), buf.slice(boundary + 2));
    const last = buf.lastIndexOf('\n');
    if (last < 0) {
      this.carry = buf;
      return '';
    }
    this.carry = buf.slice(last);
    return this.lineText(buf.slice(0, last));
  }

  /**
   * After the rows (and addToTotals): the totals, then the opening of the breakdown section, whose
   * lines feed() takes next. Throws if the rows' output did not end with its totals.
   */
  beginBreakdowns(): string {
    if (this.meta.breakdown === undefined || this.section !== 'rows') throw new Error('beginBreakdowns: no breakdown asked for, or begun already');
    const out = this.totalsText();
    this.section = 'breakdowns';
    this.started = false;
    this.inTotals = false;
    this.totalsLine = '';
    this.carry = '';
    return out + (this.format === 'csv' ? this.csv(`# section: breakdowns\n${csvLine(BREAKDOWN_CSV_COLUMNS)}`) : ',"breakdowns":[');
  }

  /**
   * The closing bytes: the totals (or the end of the breakdown section) and the digest trailer.
   * Throws if ClickHouse's output is incomplete: a query's output without its totals line, or no
   * breakdown section although one was asked for.
   */
  end(): string {
    let out: string;
    if (this.meta.breakdown === undefined) {
      out = this.totalsText();
    } else {
      if (this.section !== 'breakdowns') throw new Error('the breakdown section never began: the output is incomplete');
      if (!this.totalsDone) throw new Error('the breakdown query ended without its totals line: the output is incomplete');
      out = this.format === 'json' ? `${this.lineCount.breakdowns === 0 ? '' : '\n'}]` : '';
    }
    this.digest = this.hash.digest('hex');
    return this.format === 'csv' ? `${out}# sha256: ${this.digest}\n` : `${out},"sha256":"${this.digest}"}\n`;
  }

  /** Adds the sums of rows fed without a totals line of their own. Before end(). */
  addToTotals(impressions: bigint, spendMicros: bigint, duplicates: bigint): void {
    if (this.totalsValue !== undefined) throw new Error('addToTotals after the totals were read');
    this.extra = { impressions: this.extra.impressions + impressions, spend: this.extra.spend + spendMicros, duplicates: this.extra.duplicates + duplicates };
  }

  /** Statement rows written. */
  get rows(): number {
    return this.lineCount.rows;
  }

  /** Breakdown lines written. */
  get breakdownRows(): number {
    return this.lineCount.breakdowns;
  }

  /** From the totals line ClickHouse rendered (zeros until it came). */
  get totals(): ExportTotals {
    if (this.totalsValue !== undefined) return this.totalsValue;
    const line = this.totalsLine.trim();
    let impressions = '0';
    let spendMicros = '0';
    let duplicates = '0';
    if (line !== '') {
      // Counted from the end: the numbers follow the id fields, whatever those hold.
      if (this.format === 'csv') [impressions, spendMicros, , duplicates] = line.split(',').slice(-5);
      else ({ impressions, spend_micros: spendMicros, duplicates_removed: duplicates } = JSON.parse(line) as ExportRow);
    }
    const spend = BigInt(spendMicros) + this.extra.spend;
    this.totalsValue = {
      impressions: (BigInt(impressions) + this.extra.impressions).toString(), spend_micros: spend.toString(), spend: formatMicros(spend),
      duplicates_removed: (BigInt(duplicates) + this.extra.duplicates).toString(), maturity: this.meta.maturity,
    };
    return this.totalsValue;
  }

  /** Hex SHA-256, available after end(). */
  get sha256(): string {
    if (this.digest === undefined) throw new Error('sha256 is known only after end()');
    return this.digest;
  }

  /** The current section's query output came whole: its lines, the empty line and the totals line. */
  private get totalsDone(): boolean {
    return this.inTotals && this.totalsLine.trim() !== '';
  }

  /** The totals row (CSV) or the end of the rows array and the totals member (JSON). */
  private totalsText(): string {
    if (!this.totalsDone) throw new Error('the statement query ended without its totals line: the output is incomplete');
    const t = this.totals;
    if (this.format === 'csv') return this.csv(csvLine(['total', this.meta.advertiserId, '', t.impressions, t.spend_micros, t.spend, t.duplicates_removed, t.maturity]));
    const text = JSON.stringify(t);
    this.hash.update(`${text}\n`);
    return `${this.lineCount.rows === 0 ? '' : '\n'}],"totals":${text}`;
  }

  /** The section's last text, then the totals line follows. */
  private toTotals(lines: string, totals: string): string {
    this.inTotals = true;
    this.totalsLine = totals;
    const out = this.lineText(lines);
    if (!this.started) return out;
    this.lineCount[this.section]++; // the last line: every other one was counted by the newline after it
    if (this.format === 'csv') return out + this.csv('\n');
    this.hash.update('\n');
    return out;
  }

  /** Lines of the current section as file bytes: CSV verbatim; JSON lines joined by ",\n" (the digest sees "line\n"). */
  private lineText(text: string): string {
    if (text === '') return '';
    let n = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
    this.lineCount[this.section] += n;
    const first = !this.started;
    this.started = true;
    if (this.format === 'csv') return this.csv(text);
    this.hash.update(text);
    return `${first ? '\n' : ''}${text.replaceAll('\n', ',\n')}`;
  }

  private jsonHeader(): JsonExportHeader {
    const m = this.meta;
    return {
      status: m.status,
      advertiser_id: m.advertiserId,
      from: isoUtc(m.from),
      to: isoUtc(m.to),
      granularity: m.granularity,
      ...(m.breakdown === undefined ? {} : { breakdown: [...m.breakdown] }),
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
