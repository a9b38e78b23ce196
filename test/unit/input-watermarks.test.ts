import assert from 'node:assert/strict';
import { InputWatermarks } from '../../server/src/aggregator/core/index.js';

const T = 1_764_150_000_000;
const IDLE = 10_000;

describe('InputWatermarks', () => {
  it('is the minimum over inputs; an input that never reported holds it at 0', () => {
    const w = new InputWatermarks(3, IDLE, T);
    w.set(0, T + 50, false, T);
    w.set(1, T + 20, false, T);
    assert.equal(w.low(T), 0, 'input 2 has not reported');
    w.set(2, T + 90, false, T);
    assert.equal(w.low(T), T + 20);
  });

  it('never takes an input back; reports whether anything changed', () => {
    const w = new InputWatermarks(2, IDLE, T);
    assert.equal(w.set(0, T + 50, false, T), true);
    assert.equal(w.set(0, T + 10, false, T), false, 'an older mark is ignored');
    assert.equal(w.set(0, T + 50, false, T), false);
    assert.equal(w.set(0, T + 50, true, T), true, 'idle changed');
    assert.deepEqual(w.snapshot()[0], { watermark: T + 50, idle: true });
  });

  it('an idle input holds nothing back while another carries traffic', () => {
    const w = new InputWatermarks(2, IDLE, T);
    w.set(0, T + 500, false, T + IDLE);
    w.set(1, T + 10, true, T + IDLE);
    assert.equal(w.low(T + IDLE), T + 500);
  });

  it('when every input is idle nothing moves: low is null however much time passes', () => {
    const w = new InputWatermarks(2, IDLE, T);
    w.set(0, T + 500, true, T + 1);
    w.set(1, T + 400, true, T + 1);
    assert.equal(w.low(T + 1), null);
    assert.equal(w.low(T + 86_400_000), null);
  });

  it('after a silence, idle inputs hold for half an idle timeout once traffic resumes', () => {
    const w = new InputWatermarks(3, IDLE, T);
    for (const p of [0, 1, 2]) w.set(p, T + 100, true, T + 1_000);
    assert.equal(w.low(T + 5_000), null);
    // Source 0 flushes what its producer buffered during the silence; 1 and 2 have not yet.
    const resumed = T + 600_000;
    w.set(0, T + 590_000, false, resumed);
    assert.equal(w.low(resumed), T + 100, 'the silent inputs still count');
    assert.equal(w.low(resumed + IDLE / 2 - 1), T + 100);
    w.set(1, T + 580_000, false, resumed + 2_000);
    assert.equal(w.low(resumed + 2_000), T + 100, 'input 2 still counts');
    assert.equal(w.low(resumed + IDLE / 2), T + 580_000, 'after the grace the idle one is skipped');
  });

  it('refuses an input that does not exist', () => {
    assert.throws(() => new InputWatermarks(2, IDLE, T).set(2, 1, false, T), RangeError);
  });
});
