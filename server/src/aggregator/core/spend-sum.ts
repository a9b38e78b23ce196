/**
 * An exact sum of spend in micros, kept as high·2⁵² + low with both parts plain numbers: one
 * event's cost (≤ MAX_COST_MICROS = 1e12 < 2⁵²) added to low < 2⁵² stays below 2⁵³, so every
 * addition is exact and allocates nothing, and the sum is exact far past 2⁵³ micros.
 */
export interface SpendSum {
  spendLow: number;
  spendHigh: number;
}

const SPEND_CARRY = 2 ** 52;
const SPEND_CARRY_N = 2n ** 52n;

export function addSpend(sum: SpendSum, costMicros: number): void {
  const low = sum.spendLow + costMicros;
  if (low >= SPEND_CARRY) {
    sum.spendLow = low - SPEND_CARRY;
    sum.spendHigh++;
  } else {
    sum.spendLow = low;
  }
}

export function spendOf(sum: SpendSum): bigint {
  return BigInt(sum.spendHigh) * SPEND_CARRY_N + BigInt(sum.spendLow);
}

/** Sets the sum to `micros` (≥ 0), e.g. when a row is restored. */
export function setSpend(sum: SpendSum, micros: bigint): void {
  sum.spendHigh = Number(micros / SPEND_CARRY_N);
  sum.spendLow = Number(micros % SPEND_CARRY_N);
}
