import assert from 'node:assert/strict';
import {
  cpmMicros, formatCpm, formatDuration, formatInt, formatMicros, formatMicrosParts, formatRate, formatSpan, formatUtcDateTime,
  formatUtcHour, formatUtcTime, formatUtcWhen, formatWindowSize, isoUtc, toBigInt,
} from '../../web/src/format.js';

const AT = Date.UTC(2025, 10, 26, 14, 5, 30); // 2025-11-26 14:05:30 UTC

describe('web format: integers and money', () => {
  it('takes exact integers only, as bigint', () => {
    assert.equal(toBigInt(42), 42n);
    assert.equal(toBigInt(-7n), -7n);
    for (const bad of [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) assert.throws(() => toBigInt(bad), RangeError, String(bad));
  });

  it('groups digits by three with commas, sign kept, beyond 2^53 too', () => {
    assert.equal(formatInt(0), '0');
    assert.equal(formatInt(999), '999');
    assert.equal(formatInt(1000), '1,000');
    assert.equal(formatInt(1_234_567), '1,234,567');
    assert.equal(formatInt(-1234), '-1,234');
    assert.equal(formatInt(12_345_678_901_234_567_890n), '12,345,678,901,234,567,890');
  });

  it('formats micros exactly: at least the minimum decimals, trailing zeros beyond it dropped, never rounded', () => {
    assert.equal(formatMicros(0), '0.00');
    assert.equal(formatMicros(1), '0.000001');
    assert.equal(formatMicros(1250), '0.00125');
    assert.equal(formatMicros(12_340_000), '12.34');
    assert.equal(formatMicros(5_000_000), '5.00');
    assert.equal(formatMicros(-1_500_000), '-1.50');
    assert.equal(formatMicros(1_234_567_890_000), '1,234,567.89');
    assert.equal(formatMicros(5_000_000, 0), '5');
    assert.equal(formatMicros(1_500_000, 6), '1.500000');
    // Above 2^53, where dividing a float by 1e6 would lose the last digits.
    assert.equal(formatMicros(9_007_199_254_740_993n), '9,007,199,254.740993');
  });

  it('splits micros into two prominent decimals and the four small ones, adding up to the full value', () => {
    assert.deepEqual(formatMicrosParts(357_153_790), { main: '357.15', micro: '3790' });
    assert.deepEqual(formatMicrosParts(1_234_567_890_123n), { main: '1,234,567.89', micro: '0123' });
    assert.deepEqual(formatMicrosParts(0), { main: '0.00', micro: '0000' });
  });

  it('computes CPM in micros, rounded half up, and none without impressions', () => {
    assert.equal(cpmMicros(1_000_000, 1000), 1_000_000n);
    assert.equal(cpmMicros(1, 2000), 1n, '0.5 micro rounds up');
    assert.equal(cpmMicros(1, 3000), 0n, '0.33 micro rounds down');
    assert.equal(cpmMicros(2, 3000), 1n, '0.67 micro rounds up');
    assert.equal(cpmMicros(123_456_789_012_345_678n, 3n), 41_152_263_004_115_226_000n);
    assert.equal(cpmMicros(1000, 0), null);
    assert.equal(formatCpm(2_500_000, 1000), '2.50');
    assert.equal(formatCpm(5, 0), '–');
  });
});

describe('web format: times and durations (UTC)', () => {
  it('writes UTC times and dates', () => {
    assert.equal(formatUtcTime(AT), '14:05');
    assert.equal(formatUtcTime(AT, true), '14:05:30');
    assert.equal(formatUtcDateTime(AT), '2025-11-26 14:05 UTC');
    assert.equal(formatUtcDateTime(Date.UTC(2026, 0, 2, 3, 4)), '2026-01-02 03:04 UTC');
  });

  it('shows only the time on the same UTC day, the date otherwise', () => {
    assert.equal(formatUtcWhen(AT, AT + 3_600_000), '14:05:30 UTC');
    assert.equal(formatUtcWhen(Date.UTC(2025, 10, 25, 23, 59), Date.UTC(2025, 10, 26, 0, 1)), '2025-11-25 23:59 UTC');
  });

  it('names an hour by its start and end, across midnight too', () => {
    assert.equal(formatUtcHour(Date.UTC(2025, 10, 26, 14)), '2025-11-26 14:00–15:00');
    assert.equal(formatUtcHour(Date.UTC(2025, 10, 26, 23)), '2025-11-26 23:00–00:00');
  });

  it('writes ISO instants without zero milliseconds', () => {
    assert.equal(isoUtc(Date.UTC(2025, 10, 26, 14)), '2025-11-26T14:00:00Z');
    assert.equal(isoUtc(Date.UTC(2025, 10, 26, 14) + 123), '2025-11-26T14:00:00.123Z');
  });

  it('writes configured spans exactly, skipping zero units', () => {
    assert.equal(formatSpan(3_630_000), '1 h 30 s');
    assert.equal(formatSpan(90_000), '1 min 30 s');
    assert.equal(formatSpan(1_001), '1 s 1 ms');
    assert.equal(formatSpan(250), '250 ms');
    assert.equal(formatSpan(0), '0 s');
    assert.equal(formatSpan(-5), '0 s');
  });

  it('writes durations in the unit that fits', () => {
    assert.equal(formatDuration(850), '850 ms');
    assert.equal(formatDuration(-5), '0 ms');
    assert.equal(formatDuration(999.6), '1.0 s');
    assert.equal(formatDuration(12_345), '12.3 s');
    assert.equal(formatDuration(245_000), '4 min 05 s');
    assert.equal(formatDuration(7_800_000), '2 h 10 min');
    assert.equal(formatDuration(Number.NaN), '–');
    assert.equal(formatDuration(Number.POSITIVE_INFINITY), '–');
  });

  it('names window sizes in hours, minutes (from 2 min) or seconds', () => {
    assert.equal(formatWindowSize(3_600_000), '1 h');
    assert.equal(formatWindowSize(7_200_000), '2 h');
    assert.equal(formatWindowSize(300_000), '5 min');
    assert.equal(formatWindowSize(120_000), '2 min');
    assert.equal(formatWindowSize(60_000), '60 s');
    assert.equal(formatWindowSize(10_000), '10 s');
  });

  it('writes rates with one decimal below 100, grouped integers from 100', () => {
    assert.equal(formatRate(0), '0.0');
    assert.equal(formatRate(12.46), '12.5');
    assert.equal(formatRate(99.94), '99.9');
    assert.equal(formatRate(100), '100');
    assert.equal(formatRate(1234.4), '1,234');
    assert.equal(formatRate(Number.NaN), '–');
  });
});
