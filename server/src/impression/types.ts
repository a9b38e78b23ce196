import type { DeadLetterReason } from '../contracts/dead-letter-reasons.js';

/** An impression event as counted, after validation (see the contract in README.md). */
export interface Impression {
  impressionId: string;
  /** Event time, epoch ms. */
  ts: number;
  advertiserId: string;
  campaignId: string;
  /** Integer ≥ 0, millionths of the currency. */
  costMicros: number;
  /**
   * The value of each dimension the parse was asked for (DimensionFields), in that order: the
   * field's string, or `unknown` (contracts/dimensions.ts). Empty when none were asked for.
   */
  dimensionValues: readonly string[];
}

export type ParseResult =
  | { ok: true; impression: Impression }
  | { ok: false; reason: DeadLetterReason; detail: string };
