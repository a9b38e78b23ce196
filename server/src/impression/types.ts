/** An impression event as counted, after validation (see the contract in README.md). */
export interface Impression {
  impressionId: string;
  /** Event time, epoch ms. */
  ts: number;
  advertiserId: string;
  campaignId: string;
  /** Integer ≥ 0, millionths of the currency. */
  costMicros: number;
}

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

export type ParseResult =
  | { ok: true; impression: Impression }
  | { ok: false; reason: DeadLetterReason; detail: string };
