import assert from 'node:assert/strict';
import {
  checkRequest, dayStartMs, exportFileName, exportPath, nextDay, presetRange, utcDay, type BillingRequest,
} from '../../web/src/billing-request.js';

const request = (over: Partial<BillingRequest> = {}): BillingRequest => ({
  advertiserId: 'adv-1', fromDay: '2025-11-01', toDay: '2025-11-30', granularity: 'day', format: 'csv', breakdown: [], ...over,
});

describe('web billing request: UTC days', () => {
  it('names the UTC day of a moment', () => {
    assert.equal(utcDay(Date.UTC(2025, 10, 26, 23, 59, 59)), '2025-11-26');
    assert.equal(utcDay(Date.UTC(2025, 10, 27)), '2025-11-27');
  });

  it('reads only real YYYY-MM-DD dates', () => {
    assert.equal(dayStartMs('2025-11-26'), Date.UTC(2025, 10, 26));
    assert.equal(dayStartMs('2024-02-29'), Date.UTC(2024, 1, 29));
    for (const bad of ['2025-02-29', '2025-02-30', '2025-13-01', '2025-1-5', '26.11.2025', '']) assert.equal(dayStartMs(bad), undefined, bad);
  });

  it('steps to the next day across months, years and leap days', () => {
    assert.equal(nextDay('2025-11-26'), '2025-11-27');
    assert.equal(nextDay('2025-12-31'), '2026-01-01');
    assert.equal(nextDay('2024-02-28'), '2024-02-29');
    assert.throws(() => nextDay('2025-02-30'), RangeError);
  });

  it('turns presets into inclusive day ranges as of the server clock', () => {
    const now = Date.UTC(2025, 10, 26, 14);
    assert.deepEqual(presetRange('yesterday', now), { fromDay: '2025-11-25', toDay: '2025-11-25' });
    assert.deepEqual(presetRange('last7', now), { fromDay: '2025-11-19', toDay: '2025-11-25' });
    assert.deepEqual(presetRange('month', now), { fromDay: '2025-11-01', toDay: '2025-11-26' });
    assert.deepEqual(presetRange('lastMonth', now), { fromDay: '2025-10-01', toDay: '2025-10-31' });
  });

  it('presets at month and year boundaries', () => {
    const firstOfMarch = Date.UTC(2025, 2, 1, 0, 30);
    assert.deepEqual(presetRange('month', firstOfMarch), { fromDay: '2025-03-01', toDay: '2025-03-01' });
    assert.deepEqual(presetRange('lastMonth', firstOfMarch), { fromDay: '2025-02-01', toDay: '2025-02-28' });
    assert.deepEqual(presetRange('yesterday', firstOfMarch), { fromDay: '2025-02-28', toDay: '2025-02-28' });
    assert.deepEqual(presetRange('lastMonth', Date.UTC(2026, 0, 15)), { fromDay: '2025-12-01', toDay: '2025-12-31' });
  });
});

describe('web billing request: what goes out', () => {
  it('the export URL: the last day inclusive in the UI, `to` exclusive on the wire, values encoded', () => {
    assert.equal(exportPath(request({ advertiserId: 'adv 1&x' }), 'json'),
      '/api/v1/billing/export?advertiser_id=adv+1%26x&from=2025-11-01&to=2025-12-01&granularity=day&format=json');
    assert.equal(exportPath(request({ toDay: '2025-12-31', granularity: 'hour' }), 'csv'),
      '/api/v1/billing/export?advertiser_id=adv-1&from=2025-11-01&to=2026-01-01&granularity=hour&format=csv');
  });

  it('asks for a breakdown section only when one is picked, the dimensions comma-separated in the order given', () => {
    assert.doesNotMatch(exportPath(request(), 'csv'), /breakdown/);
    assert.equal(exportPath(request({ breakdown: ['country'] }), 'csv'),
      '/api/v1/billing/export?advertiser_id=adv-1&from=2025-11-01&to=2025-12-01&granularity=day&format=csv&breakdown=country');
    const q = new URLSearchParams(exportPath(request({ breakdown: ['country', 'device'] }), 'json').split('?')[1]);
    assert.equal(q.get('breakdown'), 'country,device', 'the server splits it at the commas');
  });

  it('an invalid last day is passed on as typed, not stepped to a day after', () => {
    assert.match(exportPath(request({ toDay: '2025-11-31' }), 'csv'), /&to=2025-11-31&/);
  });

  it('the file name: advertiser made safe for a file system, the days as picked, the format as extension', () => {
    assert.equal(exportFileName(request()), 'tally-adv-1-2025-11-01-2025-11-30.csv');
    assert.equal(exportFileName(request({ advertiserId: 'adv/1 ü', format: 'json' })), 'tally-adv_1__-2025-11-01-2025-11-30.json');
  });

  it('the file name of a statement with a breakdown ends as the server names it: -by-<dimension>…', () => {
    assert.equal(exportFileName(request({ breakdown: ['country'] })), 'tally-adv-1-2025-11-01-2025-11-30-by-country.csv');
    assert.equal(exportFileName(request({ breakdown: ['device', 'creative_id'], format: 'json' })), 'tally-adv-1-2025-11-01-2025-11-30-by-device-creative_id.json');
  });

  it('checks the request before it goes out, naming the field at fault', () => {
    assert.equal(checkRequest(request()), null);
    assert.equal(checkRequest(request({ toDay: '2025-11-01' })), null, 'one day');
    assert.equal(checkRequest(request({ advertiserId: '' }))?.parameter, 'advertiser_id');
    assert.equal(checkRequest(request({ fromDay: '2025-11-31' }))?.parameter, 'from');
    assert.equal(checkRequest(request({ toDay: 'tomorrow' }))?.parameter, 'to');
    assert.deepEqual(checkRequest(request({ fromDay: '2025-11-30', toDay: '2025-11-01' })), { message: 'The last day is before the first day.', parameter: 'to' });
  });
});
