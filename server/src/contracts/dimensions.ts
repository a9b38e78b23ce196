/**
 * Breakdown dimensions: the event contract's optional fields that counts break down by
 * (TALLY_DIMENSIONS). Read from events by impression/ (parseImpression), counted by the
 * aggregator's core, carried in impression-counts window records (count-record.ts), stored by the
 * sink in `impression_breakdowns`, served by api/ (/breakdown) and shown by web/.
 *
 * Every impression lands in exactly one value of each configured dimension, so a dimension's
 * values sum to the row's totals to the impression and the micro.
 */

export const DIMENSIONS = ['creative_id', 'publisher_id', 'country', 'device'] as const;

export type Dimension = (typeof DIMENSIONS)[number];

/** The bucket of impressions without a usable value (absent, not a string, empty, too long, control characters). */
export const UNKNOWN_VALUE = 'unknown';
/** The bucket of values past the per-row cardinality limit (TALLY_DIMENSION_LIMIT). */
export const OTHER_VALUE = 'other';

/** Longest value kept as itself; a longer one is `unknown`. */
export const MAX_DIMENSION_VALUE_LENGTH = 128;

export function isDimension(name: string): name is Dimension {
  return (DIMENSIONS as readonly string[]).includes(name);
}

// C0 controls and DEL: a value shows in tables, CSV and logs, so it is printable.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Whether a string is kept as a dimension value by itself (else it counts as `unknown`). */
export function isDimensionValue(v: string): boolean {
  return v.length >= 1 && v.length <= MAX_DIMENSION_VALUE_LENGTH && !CONTROL.test(v);
}

/** The value an event's field counts under: the string itself when usable, else `unknown`. */
export function dimensionValueOf(field: unknown): string {
  return typeof field === 'string' && isDimensionValue(field) ? field : UNKNOWN_VALUE;
}
