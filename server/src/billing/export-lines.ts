/**
 * One line of a billing export: the columns, the ClickHouse expressions that render the rows (one
 * line a row, exactly the file's bytes: Node does no per-row work) and the CSV field rule.
 *
 * Ids match the contract's ^[A-Za-z0-9._:-]{1,128}$, so they never need JSON escaping, and JSON
 * statements carry them verbatim. Dimension values are any printable text (contracts/dimensions.ts:
 * no control characters, checked by the sink), so a JSON line escapes their quotes and backslashes
 * as JSON.stringify does and nothing else needs it. CSV statements must also be safe to open in a
 * spreadsheet, which reads a cell starting with = + - @, tab, CR or LF as a formula, and an id may
 * start with '-' (any ingest token can write any campaign id). So every text field of a CSV line
 * goes through one rule (OWASP, "CSV Injection"): prefixed with a single quote when it starts with
 * one of those, then quoted per RFC 4180 when it needs it — csvField for the lines Node writes,
 * csvFieldSql (the same rule in SQL) for the rows ClickHouse renders. `-cmp-1` is written `'-cmp-1`.
 * Numbers (unsigned) and times never start with a trigger and are written as they are.
 */
import { stringLiteral, uintLiteral } from '../clickhouse/index.js';
import { csvField, FORMULA_TRIGGER, NEEDS_QUOTES } from '../contracts/csv-field.js';
import type { BillingFormat, ExportBreakdownRow, ExportRow } from '../contracts/billing-export.js';
import type { Frontier } from '../ledger/index.js';

export const CSV_COLUMNS: ReadonlyArray<keyof ExportRow> = [
  'period_start', 'advertiser_id', 'campaign_id', 'impressions', 'spend_micros', 'spend', 'duplicates_removed', 'maturity',
];

export const BREAKDOWN_CSV_COLUMNS: ReadonlyArray<keyof ExportBreakdownRow> = [
  'period_start', 'advertiser_id', 'campaign_id', 'dimension', 'value', 'impressions', 'spend_micros', 'spend', 'maturity',
];

/** How a field is written: an id (CSV rule; JSON verbatim), text (CSV rule; JSON escaped) or as it is. */
type FieldKind = 'id' | 'text' | 'plain';

// %T (HH:MM:SS) on 18.16 and current releases alike: since 23.4 %M is the month's name, not minutes.
const PERIOD_ISO = "formatDateTime(toDateTime(period_s), '%Y-%m-%dT%TZ', 'UTC')";

/** Whether the period of column period_s (seconds; `periodMs` long) is final: it ends before the frontier's finalBefore. */
export function finalPeriodSql(periodMs: number, frontier: Pick<Frontier, 'finalBefore'>): string {
  return `(period_s + ${uintLiteral(periodMs / 1000)}) * 1000 <= ${frontier.finalBefore ?? 0}`;
}

/** The maturity (a String expression) of the period of column period_s, as maturityOf (ledger/) decides it. */
export function maturitySql(periodMs: number, frontier: Frontier, allowedLatenessMs: number): string {
  const end = `(period_s + ${uintLiteral(periodMs / 1000)}) * 1000`;
  return `multiIf(${finalPeriodSql(periodMs, frontier)}, 'final', ${end} + ${uintLiteral(allowedLatenessMs)} <= ${frontier.minWatermark ?? 0}, 'provisional', 'live')`;
}

/** Spend in currency units by integer arithmetic: intDiv(s, 10⁶) '.' the last six digits. */
function spendSql(micros: string): string {
  return `concat(toString(intDiv(${micros}, 1000000)), '.', substring(toString(1000000 + ${micros} % 1000000), 2))`;
}

/** A String expression as the inside of a JSON string: backslashes and quotes escaped. */
function jsonStringSql(expr: string): string {
  return `replaceAll(replaceAll(${expr}, ${stringLiteral('\\')}, ${stringLiteral('\\\\')}), '"', ${stringLiteral('\\"')})`;
}

/** The ClickHouse expression of a line of these fields (String expressions): CSV cells, or a JSON object of strings. */
function lineSql(format: BillingFormat, fields: ReadonlyArray<[name: string, expr: string, kind: FieldKind]>): string {
  if (format === 'csv') return `concat(${fields.map(([, expr, kind]) => (kind === 'plain' ? expr : csvFieldSql(expr))).join(", ',', ")})`;
  const member = ([name, expr, kind]: [string, string, FieldKind], i: number) => `'${i === 0 ? '{' : ','}"${name}":"', ${kind === 'text' ? jsonStringSql(expr) : expr}, '"'`;
  return `concat(${fields.map(member).join(', ')}, '}')`;
}

/**
 * The ClickHouse expression of one statement row's line, from columns period_s (UInt32 seconds),
 * advertiser_id, campaign_id, the numbers `i`, `s`, `d` — summed over a GROUP BY when `grouped`, as
 * they are otherwise — and `maturity` (a String expression).
 */
export function rowLineSql(format: BillingFormat, maturity: string, grouped: boolean): string {
  const [i, s, d] = grouped ? ['sum(i)', 'sum(s)', 'sum(d)'] : ['i', 's', 'd'];
  return lineSql(format, [
    ['period_start', PERIOD_ISO, 'plain'], ['advertiser_id', 'advertiser_id', 'id'], ['campaign_id', 'campaign_id', 'id'],
    ['impressions', `toString(${i})`, 'plain'], ['spend_micros', `toString(${s})`, 'plain'], ['spend', spendSql(s), 'plain'],
    ['duplicates_removed', `toString(${d})`, 'plain'], ['maturity', maturity, 'plain'],
  ]);
}

/**
 * The ClickHouse expression of one breakdown line (BREAKDOWN_CSV_COLUMNS) of a GROUP BY over
 * period_s, advertiser_id, campaign_id, dimension (a configured name) and value, summing the
 * numbers `i` and `s`; `maturity` is a String expression.
 */
export function breakdownLineSql(format: BillingFormat, maturity: string): string {
  return lineSql(format, [
    ['period_start', PERIOD_ISO, 'plain'], ['advertiser_id', 'advertiser_id', 'id'], ['campaign_id', 'campaign_id', 'id'],
    ['dimension', 'dimension', 'plain'], ['value', 'value', 'text'],
    ['impressions', 'toString(sum(i))', 'plain'], ['spend_micros', 'toString(sum(s))', 'plain'], ['spend', spendSql('sum(s)'), 'plain'],
    ['maturity', maturity, 'plain'],
  ]);
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
