import assert from 'node:assert/strict';
import { arrivalPeriodOf, deadLetterHeaders, type DeadLetterOrigin } from '../../server/src/contracts/dead-letter.js';
import { toDeadLetterRow } from '../../server/src/sink/index.js';

const H = Date.UTC(2025, 10, 26, 9);
const origin: DeadLetterOrigin = { reason: 'too_late', detail: 'past the horizon', sourceTopic: 'impressions', sourcePartition: 3, sourceOffset: 1234 };
const value = Buffer.from(JSON.stringify({ impression_id: 'i-1', ts: H - 7_200_000 + 5_000, advertiser_id: 'adv-9', campaign_id: 'c', cost_micros: 5 }));

describe('dead letters: the arrival period of a too_late event', () => {
  it('is written after the source coordinates and read back as written', () => {
    const headers = deadLetterHeaders({ ...origin, arrivalPeriod: H });
    assert.deepEqual(headers.slice(5), [{ 'arrival-period': String(H) }]);
    assert.equal(arrivalPeriodOf({ headers }), H);
    assert.equal(arrivalPeriodOf({ headers: headers.map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Buffer.from(String(v))]))) }), H, 'as bytes, as Kafka delivers them');
  });

  it('is absent without one, and not taken from a value that is not a period start', () => {
    const headers = deadLetterHeaders(origin);
    assert.equal(headers.length, 5);
    assert.equal(arrivalPeriodOf({ headers }), undefined);
    assert.equal(arrivalPeriodOf({}), undefined);
    for (const bad of [String(H + 1), `-${H}`, '1.5e12', 'x', '', '12345678901234567']) {
      assert.equal(arrivalPeriodOf({ headers: [{ 'arrival-period': bad }] }), undefined, bad);
    }
  });

  it('is stored in the dead_letters row in epoch seconds; 0 without a usable one', () => {
    const row = (arrival: string | null) => toDeadLetterRow({
      topic: 'dlq', partition: 1, offset: 7, value,
      headers: [...deadLetterHeaders(origin), ...(arrival === null ? [] : [{ 'arrival-period': arrival }])],
    });
    assert.deepEqual(row(String(H)), {
      reason: 'too_late', detail: 'past the horizon', source_topic: 'impressions', source_partition: 3, source_offset: 1234,
      dlq_partition: 1, dlq_offset: 7, advertiser_id: 'adv-9', event_ts: (H - 7_200_000 + 5_000) / 1000, arrival_period: H / 1000,
    });
    assert.equal(row(null).arrival_period, 0, 'written before the header existed: readers fall back to inserted_at');
    assert.equal(row('oops').arrival_period, 0);
    assert.equal(row(String(4_294_969_200_000)).arrival_period, 0, 'past DateTime\'s range');
  });
});
