import assert from 'node:assert/strict';
import {
  checkRange, dayCount, defaultGranularity, localRangeLabel, MAX_RANGE_DAYS, presetDays, rangeBounds, rangeFromQuery, rangeQuery,
  RANGE_PRESETS, utcRangeLabel,
} from '../../web/src/date-range.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 10, 26, 14, 5); // Wednesday 2025-11-26 14:05 UTC

describe('web date range: presets in whole UTC days', () => {
  it('the picker offers today, yesterday, the last 7 and 30 days, this month and custom, in that order', () => {
    assert.deepEqual(RANGE_PRESETS.map((p) => p.id), ['today', 'yesterday', 'last7', 'last30', 'month', 'custom']);
  });

  it('turns each preset into its days as of the server clock; "last N days" are the N complete days before today', () => {
    assert.deepEqual(presetDays('today', NOW), { fromDay: '2025-11-26', toDay: '2025-11-26' });
    assert.deepEqual(presetDays('yesterday', NOW), { fromDay: '2025-11-25', toDay: '2025-11-25' });
    assert.deepEqual(presetDays('last7', NOW), { fromDay: '2025-11-19', toDay: '2025-11-25' });
    assert.deepEqual(presetDays('last30', NOW), { fromDay: '2025-10-27', toDay: '2025-11-25' });
    assert.deepEqual(presetDays('month', NOW), { fromDay: '2025-11-01', toDay: '2025-11-26' });
    assert.deepEqual(presetDays('lastMonth', NOW), { fromDay: '2025-10-01', toDay: '2025-10-31' });
  });

  it('a UTC day runs from 00:00 to 24:00 UTC: the last millisecond still belongs to it', () => {
    assert.deepEqual(presetDays('today', Date.UTC(2025, 10, 26, 23, 59, 59, 999)), { fromDay: '2025-11-26', toDay: '2025-11-26' });
    assert.deepEqual(presetDays('today', Date.UTC(2025, 10, 27)), { fromDay: '2025-11-27', toDay: '2025-11-27' });
  });

  it('presets across month, year and leap-day boundaries', () => {
    const newYear = Date.UTC(2026, 0, 1, 0, 30);
    assert.deepEqual(presetDays('yesterday', newYear), { fromDay: '2025-12-31', toDay: '2025-12-31' });
    assert.deepEqual(presetDays('month', newYear), { fromDay: '2026-01-01', toDay: '2026-01-01' });
    assert.deepEqual(presetDays('last7', newYear), { fromDay: '2025-12-25', toDay: '2025-12-31' });
    assert.deepEqual(presetDays('last30', Date.UTC(2024, 2, 1)), { fromDay: '2024-01-31', toDay: '2024-02-29' });
  });
});

describe('web date range: bounds and checks', () => {
  it('covers [midnight of the first day, midnight after the last day) in epoch ms', () => {
    assert.deepEqual(rangeBounds({ fromDay: '2025-11-19', toDay: '2025-11-25' }), { from: Date.UTC(2025, 10, 19), to: Date.UTC(2025, 10, 26) });
    assert.deepEqual(rangeBounds({ fromDay: '2025-11-26', toDay: '2025-11-26' }), { from: Date.UTC(2025, 10, 26), to: Date.UTC(2025, 10, 27) });
    assert.equal(rangeBounds({ fromDay: '2025-02-30', toDay: '2025-03-01' }), undefined);
    assert.equal(dayCount({ fromDay: '2025-10-27', toDay: '2025-11-25' }), 30);
    assert.equal(dayCount({ fromDay: '2025-11-26', toDay: '2025-11-25' }), 0);
  });

  it('refuses bad dates, an end before the start and more days than the API serves, naming the field', () => {
    assert.equal(checkRange({ fromDay: '2025-11-01', toDay: '2025-11-30' }), null);
    assert.equal(checkRange({ fromDay: '2025-11-26', toDay: '2025-11-26' }), null);
    assert.equal(checkRange({ fromDay: '2025-13-01', toDay: '2025-11-30' })?.parameter, 'from');
    assert.equal(checkRange({ fromDay: '2025-11-01', toDay: '' })?.parameter, 'to');
    assert.match(checkRange({ fromDay: '2025-11-26', toDay: '2025-11-25' })?.message ?? '', /before the first day/);
    const longest = { fromDay: '2025-01-01', toDay: new Date(Date.UTC(2025, 0, 1) + (MAX_RANGE_DAYS - 1) * DAY).toISOString().slice(0, 10) };
    assert.equal(checkRange(longest), null);
    const tooLong = { ...longest, toDay: new Date(Date.UTC(2025, 0, 1) + MAX_RANGE_DAYS * DAY).toISOString().slice(0, 10) };
    assert.deepEqual(checkRange(tooLong), { message: `A range may span at most ${MAX_RANGE_DAYS} days.`, parameter: 'to' });
  });

  it('charts up to two days by hour, longer ranges by day', () => {
    assert.equal(defaultGranularity({ fromDay: '2025-11-26', toDay: '2025-11-26' }), 'hour');
    assert.equal(defaultGranularity({ fromDay: '2025-11-25', toDay: '2025-11-26' }), 'hour');
    assert.equal(defaultGranularity({ fromDay: '2025-11-24', toDay: '2025-11-26' }), 'day');
  });
});

describe('web date range: the URL query', () => {
  it('reads a preset as its days now, custom days as given, anything else as today', () => {
    assert.deepEqual(rangeFromQuery({ range: 'last7' }, NOW), { preset: 'last7', fromDay: '2025-11-19', toDay: '2025-11-25' });
    assert.deepEqual(rangeFromQuery({ range: 'custom', from: '2025-11-01', to: '2025-11-03' }, NOW), { preset: 'custom', fromDay: '2025-11-01', toDay: '2025-11-03' });
    assert.deepEqual(rangeFromQuery({}, NOW), { preset: 'today', fromDay: '2025-11-26', toDay: '2025-11-26' });
    assert.deepEqual(rangeFromQuery({ range: 'lastMonth' }, NOW).preset, 'today', 'not a picker preset');
    assert.deepEqual(rangeFromQuery({ range: ['last7', 'today'] }, NOW).preset, 'today', 'a repeated key');
    // Custom days missing: today; invalid ones are kept for the picker to show what is wrong.
    assert.deepEqual(rangeFromQuery({ range: 'custom', to: '2025-11-40' }, NOW), { preset: 'custom', fromDay: '2025-11-26', toDay: '2025-11-40' });
  });

  it('writes days for custom ranges only, and reads back what it wrote', () => {
    assert.deepEqual(rangeQuery({ preset: 'month', fromDay: '2025-11-01', toDay: '2025-11-26' }), { range: 'month' });
    const custom = { preset: 'custom' as const, fromDay: '2025-10-01', toDay: '2025-10-15' };
    assert.deepEqual(rangeQuery(custom), { range: 'custom', from: '2025-10-01', to: '2025-10-15' });
    assert.deepEqual(rangeFromQuery(rangeQuery(custom), NOW), custom);
  });
});

describe('web date range: UTC and the viewer\'s local time', () => {
  const from = Date.UTC(2025, 10, 20);
  const to = Date.UTC(2025, 10, 27);

  it('shows the [from, to) the API reads, in UTC', () => {
    assert.equal(utcRangeLabel(from, to), '2025-11-20 00:00 – 2025-11-27 00:00 UTC');
  });

  it('shows the same moments in a time zone, with its offset (half hours and negative offsets too)', () => {
    assert.equal(localRangeLabel(from, to, 'Europe/Berlin'), '2025-11-20 01:00 – 2025-11-27 01:00 Europe/Berlin (UTC+1)');
    assert.equal(localRangeLabel(from, to, 'America/New_York'), '2025-11-19 19:00 – 2025-11-26 19:00 America/New_York (UTC-5)');
    assert.equal(localRangeLabel(from, to, 'Asia/Kolkata'), '2025-11-20 05:30 – 2025-11-27 05:30 Asia/Kolkata (UTC+5:30)');
    assert.equal(localRangeLabel(from, to, 'UTC'), '2025-11-20 00:00 – 2025-11-27 00:00 UTC (UTC+0)');
  });

  it('gives each end its own offset when daylight saving time changes in between', () => {
    assert.equal(localRangeLabel(Date.UTC(2025, 2, 29), Date.UTC(2025, 2, 31), 'Europe/Berlin'),
      '2025-03-29 01:00 (UTC+1) – 2025-03-31 02:00 (UTC+2) Europe/Berlin');
  });
});
