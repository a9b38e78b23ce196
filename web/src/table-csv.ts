/**
 * The CSV of a dashboard table, exactly the lines shown in the order shown (no Vue, no I/O): a
 * campaign's breakdown by one dimension, and the range view's campaign table:
 *
 *   country,impressions,spend,share_of_impressions_pct,maturity
 *   DE,1200,1.500000,45.00,final
 *
 *   advertiser_id,campaign_id,impressions,spend,cpm,maturity
 *   adv-1,cmp-1,1200,1.500000,1.250000,provisional
 *
 * RFC 4180 with LF line ends, as the billing export writes. Money (spend, CPM) is the exact
 * decimal with 6 places from the integer micros (contracts/micros.ts, the export's own formatting),
 * never through a float, so the spend column sums to the page's total to the micro. Ids and values
 * are whatever an ingest token sent (printable, up to 128 characters), so text fields follow the
 * billing export's rule for spreadsheets (OWASP "CSV Injection", server/src/contracts/csv-field.ts):
 * a leading = + - @ tab CR LF gets a single quote in front, then the field is quoted when it needs it.
 */
import { csvField } from '../../server/src/contracts/csv-field.js';
import { formatMicros } from '../../server/src/contracts/micros.js';
import { formatShare, type BreakdownLine } from './breakdown.js';
import { cpmMicros } from './format.js';
import type { CampaignTotals } from './live-aggregates.js';

/** The file: the header, then one line per table line; fields as written (text through csvField). */
function csvFile(header: readonly string[], lines: ReadonlyArray<readonly string[]>): string {
  return [header, ...lines].map((fields) => `${fields.join(',')}\n`).join('');
}

/** A part of a file name: anything but A-Z a-z 0-9 . _ - replaced by `_`. */
const fileNamePart = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');

/** A breakdown table: a header naming the dimension, then one line per value. */
export function breakdownCsv(dimension: string, lines: readonly BreakdownLine[], totalImpressions: number): string {
  return csvFile([csvField(dimension), 'impressions', 'spend', 'share_of_impressions_pct', 'maturity'], lines.map((l) => [
    csvField(l.value), String(l.impressions), formatMicros(l.spendMicros), formatShare(l.impressions, totalImpressions), csvField(l.maturity),
  ]));
}

/** tally-<advertiser>-<campaign>-<dimension>-<first day>-<last day>.csv (days as picked, both included). */
export function breakdownFileName(p: { advertiserId: string; campaignId: string; dimension: string; fromDay: string; toDay: string }): string {
  return `tally-${fileNamePart(p.advertiserId)}-${fileNamePart(p.campaignId)}-${fileNamePart(p.dimension)}-${p.fromDay}-${p.toDay}.csv`;
}

/**
 * The campaign table: one line per campaign, the advertiser always named (the file may leave the
 * page); CPM as the table shows it (rounded half up to the micro), empty without impressions.
 */
export function campaignCsv(campaigns: readonly CampaignTotals[]): string {
  return csvFile(['advertiser_id', 'campaign_id', 'impressions', 'spend', 'cpm', 'maturity'], campaigns.map((c) => {
    const cpm = cpmMicros(c.spendMicros, c.impressions);
    return [
      csvField(c.advertiserId), csvField(c.campaignId), String(c.impressions), formatMicros(c.spendMicros),
      cpm === null ? '' : formatMicros(cpm), csvField(c.maturity),
    ];
  }));
}

/** tally-<advertiser>-campaigns-<first day>-<last day>.csv; tally-campaigns-… for all advertisers (null). */
export function campaignFileName(p: { advertiserId: string | null; fromDay: string; toDay: string }): string {
  const who = p.advertiserId === null ? '' : `${fileNamePart(p.advertiserId)}-`;
  return `tally-${who}campaigns-${p.fromDay}-${p.toDay}.csv`;
}
