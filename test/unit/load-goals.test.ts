import assert from 'node:assert/strict';
import { goalTable, limitsByBatch } from '../../load-tests/lib/load-goals.js';
import type { RampResult } from '../../load-tests/lib/ramp.js';

/** A ramp result with what the goals read: its batch size, found limit and bound. */
function ramp(batch: number, limitEventsPerS: number, limitAtTop = false): RampResult {
  return {
    plan: { batch, steps: [5_000, 10_000], stepS: 10, p99Ms: 200 }, steps: [], limitEventsPerS, limitAtTop, eventsAcked: 0,
    cpu: { apiS: undefined, brokerS: undefined, k6S: undefined },
    k6: { script: 'ingest-ramp.js', exitCode: 0, summary: { metrics: {} }, failedThresholds: [] },
  };
}

describe('load goals', () => {
  it('groups the ramps by batch size, in turn order, with the median limit and the run that found it', () => {
    const runs = [ramp(100, 50_000), ramp(1000, 25_000), ramp(100, 55_000), ramp(1000, 20_000), ramp(100, 35_000), ramp(1000, 25_000)];
    const groups = limitsByBatch(runs);
    assert.deepEqual(groups.map((g) => [g.batch, g.limits, g.median]), [[100, [50_000, 55_000, 35_000], 50_000], [1000, [25_000, 20_000, 25_000], 25_000]]);
    assert.equal(groups[0].medianRun, runs[0]);
    assert.equal(groups[1].medianRun, runs[1], 'the first run with the median limit');
    assert.equal(limitsByBatch([ramp(100, 10_000), ramp(100, 30_000)])[0].median, 10_000, 'an even count takes the lower middle');
  });

  it('judges each batch size by its median against 50,000 events/s, and the thresholds and exactness as they came', () => {
    const table = goalTable({ ramps: [ramp(100, 50_000), ramp(100, 55_000), ramp(100, 35_000), ramp(1000, 25_000)], thresholdsPassed: true, exact: true });
    assert.match(table, /batches of 100 .*\| ≥ 50,000 events\/s \| 50,000 events\/s \(runs 50,000 · 55,000 · 35,000\) \| \*\*met\*\* \|/);
    assert.match(table, /batches of 1,000 .*\| 25,000 events\/s \| \*\*missed\*\* \|/);
    assert.match(table, /k6 thresholds \| all pass \| all pass \| \*\*met\*\* \|/);
    assert.match(table, /\| exact \| exact \| \*\*met\*\* \|/);

    const bad = goalTable({ ramps: [], thresholdsPassed: undefined, exact: false });
    assert.doesNotMatch(bad, /thresholds|batches/, 'goals of parts that did not run are not listed');
    assert.match(bad, /\| exact \| NOT exact \| \*\*missed\*\* \|/);
  });
});
