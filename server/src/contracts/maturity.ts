/**
 * How settled a number is, shown next to every number in the API, the exports and the dashboard:
 *   live         its windows are open: late impressions may still add to it;
 *   provisional  its windows are closed (the watermark passed their end + allowed lateness), but its
 *                billing period is not final yet: an impression within the dedup horizon may still
 *                revise it (the row is flagged revised);
 *   final        its billing period is closed in every partition and the number is in the ledger:
 *                it never changes again, whatever arrives later.
 * Decided by ledger/ (finality frontier) and live/; carried by api-types.ts, live-protocol.ts and
 * billing-export.ts to the API's clients and the dashboard.
 */
export type Maturity = 'live' | 'provisional' | 'final';

const ORDER: Record<Maturity, number> = { live: 0, provisional: 1, final: 2 };

/** The least settled of several (a day's row is as settled as its least settled hour). */
export function leastMature(a: Maturity, b: Maturity): Maturity {
  return ORDER[a] <= ORDER[b] ? a : b;
}
