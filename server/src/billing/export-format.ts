/**
 * The bytes of a billing export, CSV or JSON, with the SHA-256 digest accumulated on the way.
 * Rows are rendered by ClickHouse (rowLineSql: one line a row, exactly the bytes below) and streamed
 * through this encoder, which adds the header, the separators, the totals and the trailer; so a
 * month of 720k rows costs Node no per-row work. Pure: no I/O.
 *
 * Deterministic: a final export carries no generation time, rows come in (period, campaign) order,
 * numbers are exact integer strings and spend is formatted from integer micros — so the same final
 * period always gives the same bytes and the same digest.
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
 * JSON (contracts/billing-export.ts, JsonExport): {"status", "advertiser_id", "from", "to",
 *   "granularity", ["final_at"], "late_unbillable", "lineage", ["generated_at" provisional only],
 *   "rows": [...], "totals": {...}, "sha256"}. The digest is over the canonical form:
 *   JSON.stringify of the header object (the fields above before rows, without generated_at), of
 *   each row and of the totals, each followed by "\n" — the file holds those exact serializations,
 *   so a reader recomputes it by re-serializing what it parsed.
 *
 * Ids match the contract's ^[A-Za-z0-9._:-]{1,128}$, so they never need JSON escaping, and JSON
 * statements carry them verbatim. CSV statements must also be safe to open in a spreadsheet, which
 * reads a cell starting with = + - @, tab, CR or LF as a formula, and an id may start with '-' (any
 * ingest token can write any campaign id). So every text field of a CSV line goes through one rule
 * (OWASP, "CSV Injection"): prefixed with a single quote when it starts with one of those, then
 * quoted per RFC 4180 when it needs it — csvField for the lines Node writes, csvFieldSql (the same
 * rule in SQL) for the rows ClickHouse renders. `-cmp-1` is written `'-cmp-1`. Numbers (unsigned)
 * and times never start with a trigger and are written as they are. Comment lines are one cell
 * starting with '#': the advertiser id in `# advertiser:` can start no cell of its own (no comma,
 * semicolon, quote or line break in an id; begin() checks the pattern). The digest is over the
 * bytes served, so it covers the neutralised fields as they are.
 */
import crypto from 'node:crypto';
import { stringLiteral } from '../clickhouse/index.js';
import type {
  BillingFormat, BillingGranularity, ExportRow, ExportStatus, ExportTotals, JsonExportHeader,
} from '../contracts/billing-export.js';
import { ID_PATTERN } from '../contracts/ids.js';
import type { Maturity } from '../contracts/maturity.js';
import { formatMicros } from '../contracts/micros.js';
import type { LateUnbillable, Lineage } from '../ledger/index.js';
import { isoUtc } from './export-params.js';

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
  /** The statement's maturity: its least settled period's. */
  maturity: Maturity;
  /** Epoch ms; written only in provisional exports (a final one must not change between runs). */
  generatedAt?: number;
}

export const CSV_COLUMNS: ReadonlyArray<keyof ExportRow> = [
  'period_start', 'advertiser_id', 'campaign_id', 'impressions', 'spend_micros', 'spend', 'duplicates_removed', 'maturity',
];

/**
 * The ClickHouse expression of one row's line, from columns period_s (UInt32 seconds),
 * advertiser_id, campaign_id, the numbers `i`, `s`, `d` — summed over a GROUP BY when `grouped`, as
 * they are otherwise — and `maturity` (a String expression). Spend in currency units by integer
 * arithmetic: intDiv(s, 10⁶) '.' the last six digits.
 */
export function rowLineSql(format: BillingFormat, maturity: string, grouped: boolean): string {
  const [i, s, d] = grouped ? ['sum(i)', 'sum(s)', 'sum(d)'] : ['i', 's', 'd'];
  // %T (HH:MM:SS) on 18.16 and current releases alike: since 23.4 %M is the month's name, not minutes.
  const iso = "formatDateTime(toDateTime(period_s), '%Y-%m-%dT%TZ', 'UTC')";
  const spend = `concat(toString(intDiv(${s}, 1000000)), '.', substring(toString(1000000 + ${s} % 1000000), 2))`;
  if (format === 'csv') {
    return `concat(${iso}, ',', ${csvFieldSql('advertiser_id')}, ',', ${csvFieldSql('campaign_id')}, ',', toString(${i}), ',', toString(${s}), ',', ${spend}, ',', toString(${d}), ',', ${maturity})`;
  }
  const field = (name: string, expr: string, first = false) => `'${first ? '{' : ','}"${name}":"', ${expr}, '"'`;
  return `concat(${[
    field('period_start', iso, true), field('advertiser_id', 'advertiser_id'), field('campaign_id', 'campaign_id'),
    field('impressions', `toString(${i})`), field('spend_micros', `toString(${s})`), field('spend', spend),
    field('duplicates_removed', `toString(${d})`), field('maturity', maturity),
  ].join(', ')}, '}')`;
}

/**
 * A leading character that makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"):
 * = + - @, tab (0x09), CR (0x0D), and LF (0x0A), which OWASP's page lists too. Also the pattern
 * csvFieldSql hands ClickHouse's match() (re2 reads this source the same way).
 */
export const FORMULA_TRIGGER = /^[-=+@\t\r\n]/;

/** A field that must be quoted: a comma, quote, CR or LF in it (RFC 4180), or a leading # or space, or a trailing space. */
const NEEDS_QUOTES = /[",\r\n]|^[# ]| $/;

/**
 * One CSV text field, safe to open in a spreadsheet: prefixed with a single quote when it starts
 * with a FORMULA_TRIGGER (`-cmp-1` → `'-cmp-1`), then quoted when it needs it (quotes doubled):
 * `=1+2";=1+2` → `"'=1+2"";=1+2"`. Text without either is written as it is, so unsigned numbers stay
 * numbers. csvFieldSql is the same rule in SQL.
 */
export function csvField(value: string): string {
  const text = FORMULA_TRIGGER.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * csvField as a ClickHouse expression (18.16 and current) over the String expression `expr`, for
 * the fields ClickHouse renders: the same two patterns, through match() (re2), so both give the same
 * bytes for any value. Only for text columns: numbers are rendered with toString() as they are.
 */
export function csvFieldSql(expr: string): string {
  const text = `if(match(${expr}, ${stringLiteral(FORMULA_TRIGGER.source)}), concat(${stringLiteral("'")}, ${expr}), ${expr})`;
  return `if(match(${text}, ${stringLiteral(NEEDS_QUOTES.source)}), concat('"', replaceAll(${text}, '"', '""'), '"'), ${text})`;
}

export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\n`;
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
 * Builds the file around the rows ClickHouse renders. feed() takes ClickHouse's TabSeparatedRaw
 * output of rowLineSql … WITH TOTALS as it arrives: one line a row, an empty line, then the totals
 * line (the same expression over all rows), whose sums become the totals.
 */
export class ExportEncoder {
  private readonly hash = crypto.createHash('sha256');
  private rowCount = 0;
  /** Output not written yet: from the last newline on (a row's newline waits to see if the empty line follows). */
  private carry = '';
  private inTotals = false;
  private totalsLine = '';
  /** Some row text was written. */
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
   * The bytes of a piece of ClickHouse's output. A row's closing newline is held back until the
   * next piece shows whether the empty line (rows done, totals next) follows it.
   */
  feed(chunk: string): string {
    if (this.inTotals) {
      this.totalsLine += chunk;
      return '';
    }
    const buf = this.carry + chunk;
    if (!this.started && buf.startsWith('\n')) return this.toTotals('', buf.slice(1)); // no rows at all
    const boundary = buf.indexOf('\n\n');
    if (boundary >= 0) return this.toTotals(buf.slice(0, boundary), buf.slice(boundary + 2));
    const last = buf.lastIndexOf('\n');
    if (last < 0) {
      this.carry = buf;
      return '';
    }
    this.carry = buf.slice(last);
    return this.rowText(buf.slice(0, last));
  }

  /** The closing bytes: totals and the digest trailer. Throws if ClickHouse's output did not end with its totals. */
  end(): string {
    if (!this.inTotals || this.totalsLine.trim() === '') throw new Error('the statement query ended without its totals line: the output is incomplete');
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

  /** Adds the sums of rows fed without a totals line of their own. Before end(). */
  addToTotals(impressions: bigint, spendMicros: bigint, duplicates: bigint): void {
    if (this.totalsValue !== undefined) throw new Error('addToTotals after the totals were read');
    this.extra = { impressions: this.extra.impressions + impressions, spend: this.extra.spend + spendMicros, duplicates: this.extra.duplicates + duplicates };
  }

  get rows(): number {
    return this.rowCount;
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

  /** The rows' last text, then the totals line follows. */
  private toTotals(rows: string, totals: string): string {
    this.inTotals = true;
    this.totalsLine = totals;
    const out = this.rowText(rows);
    if (!this.started) return out;
    this.rowCount++; // the last row: every other one was counted by the newline after it
    if (this.format === 'csv') return out + this.csv('\n');
    this.hash.update('\n');
    return out;
  }

  /** Row lines as file bytes: CSV verbatim; JSON rows joined by ",\n" (the digest sees "row\n"). */
  private rowText(text: string): string {
    if (text === '') return '';
    let n = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
    this.rowCount += n;
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
