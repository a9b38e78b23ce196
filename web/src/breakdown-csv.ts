/**
 * The CSV of a breakdown table, exactly the lines shown in the order shown (no Vue, no I/O):
 *
 *   country,impressions,spend,share_of_impressions_pct,maturity
 *   DE,1200,1.500000,45.00,final
 *
 * RFC 4180 with LF line ends, as the billing export writes. Spend is the exact decimal with 6
 * places from the integer micros (contracts/micros.ts, the export's own formatting), never through
 * a float, so the column sums to the page's total to the micro. A value is whatever an ingest token
 * sent (printable, up to 128 characters), so text fields follow the billing export's rule for
 * spreadsheets (OWASP "CSV Injection", server/src/contracts/csv-field.ts): a leading
 * = + - @ tab CR LF gets a single quote in front, then the field is quoted when it needs it.
 */
import { csvField } from '../../server/src/contracts/csv-field.js';
import { formatMicros } from '../../server/src/contracts/micros.js';
import { formatShare, type BreakdownLine } from './breakdown.js';

/** The file: a header naming the dimension, then one line per table line. */
export function breakdownCsv(dimension: string, lines: readonly BreakdownLine[], totalImpressions: number): string {
  const header = [csvField(dimension), 'impressions', 'spend', 'share_of_impressions_pct', 'maturity'].join(',');
  const body = lines.map((l) => [
    csvField(l.value), String(l.impressions), formatMicros(l.spendMicros), formatShare(l.impressions, totalImpressions), csvField(l.maturity),
  ].join(','));
  return `${[header, ...body].join('\n')}\n`;
}

/** tally-<advertiser>-<campaign>-<dimension>-<first day>-<last day>.csv (days as picked, both included). */
export function breakdownFileName(p: { advertiserId: string; campaignId: string; dimension: string; fromDay: string; toDay: string }): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');
  return `tally-${safe(p.advertiserId)}-${safe(p.campaignId)}-${safe(p.dimension)}-${p.fromDay}-${p.toDay}.csv`;
}
