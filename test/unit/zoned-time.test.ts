import assert from 'node:assert/strict';
import { parseZonedIsoTime } from '../../server/src/contracts/zoned-time.js';
import { parseTimeParam } from '../../server/src/http/index.js';
import { parseImpression } from '../../server/src/impression/index.js';

describe('parseZonedIsoTime (event ts strings and time parameters)', () => {
  it('reads Z and ±hh:mm zones, optional seconds and fraction (truncated to ms)', () => {
    assert.equal(parseZonedIsoTime('2026-11-30T12:00Z'), Date.UTC(2026, 10, 30, 12));
    assert.equal(parseZonedIsoTime('2026-11-30T12:00:01.123987Z'), Date.UTC(2026, 10, 30, 12, 0, 1, 123));
    assert.equal(parseZonedIsoTime('2026-11-30T14:30:00+02:30'), Date.UTC(2026, 10, 30, 12));
    assert.equal(parseZonedIsoTime('2024-02-29T00:00:00-01:00'), Date.UTC(2024, 1, 29, 1));
  });

  it('refuses zoneless strings, impossible dates and times, and bad offsets', () => {
    for (const s of ['2026-11-30T12:00:00', '2026-02-29T00:00Z', '1900-02-29T00:00Z', '2026-04-31T00:00Z', '2026-11-30T24:00Z',
      '2026-11-30T12:60Z', '2026-11-30T12:00:60Z', '2026-11-30T12:00+24:00', '2026-11-30T12:00+01:60', '0099-01-01T00:00Z', '2026-11-30 12:00Z']) {
      assert.equal(parseZonedIsoTime(s), undefined, s);
    }
  });

  it('is the same reading for an event and for a time parameter', () => {
    const ts = '2026-11-30T10:15:30.5+01:00';
    const parsed = parseImpression(Buffer.from(JSON.stringify({ impression_id: 'i-1', ts, advertiser_id: 'a', campaign_id: 'c', cost_micros: 1 })));
    assert.ok(parsed.ok);
    assert.equal(parsed.impression.ts, parseTimeParam(ts));
    assert.equal(parsed.impression.ts, Date.UTC(2026, 10, 30, 9, 15, 30, 500));
  });
});
