/**
 * The ingest step ramp's judge (load-tests/lib/ramp.ts): each step from a k6 summary, the first
 * step not met ends the judging, the found limit is the top of the leading met steps.
 */
import assert from 'node:assert/strict';
import type { K6Result } from '../../load-tests/lib/k6.js';
import { foundLimit, judgeSteps, rampTable, type RampPlan } from '../../load-tests/lib/ramp.js';

const plan: RampPlan = { batch: 100, steps: [10_000, 20_000, 30_000, 40_000], stepS: 10, p99Ms: 200 };

interface Step { ok?: number; failed?: number; p99?: number; acked?: number }

/** A k6 summary's submetric values for the given steps (missing steps: no samples). */
function summary(steps: Step[]): (name: string, field: string) => number {
  return (name, field) => {
    const m = /^(\w+)\{step:(\d+)\}$/.exec(name);
    const s = m ? steps[Number(m[2])] : undefined;
    if (m === null || s === undefined) return 0;
    if (m[1] === 'ingest_failed') return field === 'passes' ? s.failed ?? 0 : s.ok ?? 0;
    if (m[1] === 'http_req_duration') return field === 'p(99)' ? s.p99 ?? 0 : 1;
    if (m[1] === 'events_acked') return s.acked ?? 0;
    return 0;
  };
}

const full = (n: number, p99: number): Step => ({ ok: n, p99, acked: n * 100 });

describe('ingest step ramp: judging the steps', () => {
  it('stops at the first step over the p99 bound; later steps are not judged', () => {
    const steps = judgeSteps(plan, summary([full(1000, 50), full(2000, 201), full(900, 90)]));
    assert.deepEqual(steps.map((s) => s.verdict), ['met', 'not met', 'not run', 'not run']);
    assert.equal(steps[1].why, 'p99 > 200 ms');
    assert.equal(steps[0].achievedEventsPerS, 10_000);
    assert.deepEqual(foundLimit(steps), { limitEventsPerS: 10_000, limitAtTop: false });
  });

  it('a single failed request fails its step, however fast', () => {
    const steps = judgeSteps(plan, summary([full(1000, 20), { ok: 1999, failed: 1, p99: 30, acked: 199_900 }]));
    assert.equal(steps[1].verdict, 'not met');
    assert.equal(steps[1].why, '1 failed');
    assert.equal(foundLimit(steps).limitEventsPerS, 10_000);
  });

  it('a step k6 could not offer (fewer than 95 % of its requests started) is not met', () => {
    const steps = judgeSteps(plan, summary([full(949, 20)]));
    assert.equal(steps[0].verdict, 'not met');
    assert.match(steps[0].why, /k6 started 949 of 1000 requests/);
    assert.deepEqual(foundLimit(steps), { limitEventsPerS: 0, limitAtTop: false });
  });

  it('every step met: the limit is the top step, at or above which the real one lies', () => {
    const steps = judgeSteps(plan, summary([full(1000, 10), full(2000, 10), full(3000, 10), full(4000, 199)]));
    assert.deepEqual(foundLimit(steps), { limitEventsPerS: 40_000, limitAtTop: true });
  });

  it('the table shows the steps run, one line for those never reached, the limit and the CPU per event', () => {
    const steps = judgeSteps(plan, summary([full(1000, 50), full(2000, 201)]));
    const k6: K6Result = { script: 'ingest-ramp.js', exitCode: 99, summary: { metrics: {} }, failedThresholds: [] };
    const table = rampTable({ plan, steps, ...foundLimit(steps), eventsAcked: 300_000, cpu: { apiS: 6, brokerS: undefined, k6S: undefined }, k6 });
    assert.match(table, /\| 20,000 \(200\.0 req\/s\) \| 20,000 \| 2,000 \|.*\*\*not met\*\* \(p99 > 200 ms\) \|/);
    assert.match(table, /\| 30,000 … 40,000 \|.*not run \(2 steps after the first step not met\) \|/);
    assert.match(table, /Highest sustained rate, batches of 100: \*\*10,000 events\/s\*\*\./);
    assert.match(table, /the api process 6\.0 s \(20\.0 µs per event\)/);
    assert.doesNotMatch(table, /broker/);
    assert.doesNotMatch(table, /cores/, 'no sum without every part of it');
  });

  it('sums the api, broker and k6 CPU per event into the cores the first step not met would need', () => {
    const steps = judgeSteps(plan, summary([full(1000, 50), full(2000, 201)]));
    const k6: K6Result = { script: 'ingest-ramp.js', exitCode: 99, summary: { metrics: {} }, failedThresholds: [] };
    const table = rampTable({ plan, steps, ...foundLimit(steps), eventsAcked: 300_000, cpu: { apiS: 6, brokerS: 3, k6S: 6 }, k6 });
    assert.match(table, /the broker 3\.0 s \(10\.0 µs per event\), k6 6\.0 s \(20\.0 µs per event\)/);
    // 50 µs per event at the 20,000 events/s step not met: one core.
    assert.match(table, /Together 50\.0 µs per event: 1\.00 cores at the first step not met \(20,000 events\/s\)/);
  });
});
