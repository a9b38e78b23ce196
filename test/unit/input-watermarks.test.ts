import assert from 'node:assert/strict';
import { InputWatermarks } from '../../server/src/aggregator/core/index.js';

const T = 1_764_150_000_000;
/** Every source's end: where the idle inputs of these tests have read to. */
const ENDS: ReadonlyMap<number, number> = new Map([[0, 0], [1, 0], [2, 0]]);
const IDLE = 10_000;

describe('InputWatermarks', () => {
  it('is the minimum over inputs; an input that never reported holds it at 0', () => {
    const w = new InputWatermarks(3, IDLE, T);
    w.set(0, { watermark: T + 50, idle: false, position: 0 }, T);
    w.set(1, { watermark: T + 20, idle: false, position: 0 }, T);
    assert.equal(w.low(T, ENDS), 0, 'input 2 has not reported');
    w.set(2, { watermark: T + 90, idle: false, position: 0 }, T);
    assert.equal(w.low(T, ENDS), T + 20);
  });

  it('never takes an input back; reports whether anything changed', () => {
    const w = new InputWatermarks(2, IDLE, T);
    assert.equal(w.set(0, { watermark: T + 50, idle: false, position: 0 }, T), true);
    assert.equal(w.set(0, { watermark: T + 10, idle: false, position: 0 }, T), false, 'an older mark is ignored');
    assert.equal(w.set(0, { watermark: T + 50, idle: false, position: 0 }, T), false);
    assert.equal(w.set(0, { watermark: T + 50, idle: true, position: 0 }, T), true, 'idle changed');
    assert.deepEqual(w.snapshot()[0], { watermark: T + 50, idle: true, position: 0 });
  });

  it('an idle input holds nothing back while another carries traffic', () => {
    const w = new InputWatermarks(2, IDLE, T);
    w.set(0, { watermark: T + 500, idle: false, position: 0 }, T + IDLE);
    w.set(1, { watermark: T + 10, idle: true, position: 0 }, T + IDLE);
    assert.equal(w.low(T + IDLE, ENDS), T + 500);
  });

  it('when every input is idle nothing moves: low is null however much time passes', () => {
    const w = new InputWatermarks(2, IDLE, T);
    w.set(0, { watermark: T + 500, idle: true, position: 0 }, T + 1);
    w.set(1, { watermark: T + 400, idle: true, position: 0 }, T + 1);
    assert.equal(w.low(T + 1, ENDS), null);
    assert.equal(w.low(T + 86_400_000, ENDS), null);
  });

  it('after a silence, idle inputs hold for half an idle timeout once traffic resumes', () => {
    const w = new InputWatermarks(3, IDLE, T);
    for (const p of [0, 1, 2]) w.set(p, { watermark: T + 100, idle: true, position: 0 }, T + 1_000);
    assert.equal(w.low(T + 5_000, ENDS), null);
    // Source 0 flushes what its producer buffered during the silence; 1 and 2 have not yet.
    const resumed = T + 600_000;
    w.set(0, { watermark: T + 590_000, idle: false, position: 0 }, resumed);
    assert.equal(w.low(resumed, ENDS), T + 100, 'the silent inputs still count');
    assert.equal(w.low(resumed + IDLE / 2 - 1, ENDS), T + 100);
    w.set(1, { watermark: T + 580_000, idle: false, position: 0 }, resumed + 2_000);
    assert.equal(w.low(resumed + 2_000, ENDS), T + 100, 'input 2 still counts');
    assert.equal(w.low(resumed + IDLE / 2, ENDS), T + 580_000, 'after the grace the idle one is skipped');
  });

  it('an idle input holds again once its partition has records past what it read, or its end is unknown', () => {
    const w = new InputWatermarks(2, IDLE, T);
    w.set(0, { watermark: T + 500, idle: false, position: 0 }, T + IDLE);
    w.set(1, { watermark: T + 10, idle: true, position: 40 }, T + IDLE);
    assert.equal(w.low(T + IDLE, new Map([[1, 41]])), T + 500, 'read to its end (one offset of slack for a transaction marker)');
    assert.equal(w.low(T + IDLE, new Map([[1, 42]])), T + 10, 'records behind a stalled consumer');
    assert.equal(w.low(T + IDLE, new Map()), T + 10, 'end unknown');
  });

  it('refuses an input that does not exist', () => {
    assert.throws(() => new InputWatermarks(2, IDLE, T).set(2, { watermark: 1, idle: false, position: null }, T), RangeError);
  });
});
