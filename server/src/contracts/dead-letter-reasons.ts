/**
 * Why an event is not counted: the `reason` header of the dead-letter topic (dead-letter.ts).
 * Decided by parseImpression (impression/) and the aggregator's core (future_timestamp, too_late);
 * read by the sink, the live feed and the tools. Ingest refuses events with the same words
 * (api-types.ts, IngestRejectReason). No Node types here: the dashboard's type check reads it.
 */

/** Why an event went to the dead-letter topic; carried in the `reason` header. */
export type DeadLetterReason =
  | 'bad_json'
  | 'not_object'
  | 'missing_field'
  | 'bad_type'
  | 'bad_id'
  | 'bad_timestamp'
  | 'bad_cost'
  | 'too_large'
  | 'future_timestamp'
  | 'too_late';

export const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = [
  'bad_json', 'not_object', 'missing_field', 'bad_type', 'bad_id', 'bad_timestamp', 'bad_cost',
  'too_large', 'future_timestamp', 'too_late',
];
