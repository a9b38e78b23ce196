import assert from 'node:assert/strict';
import { ConsumeBatchSize } from '../../server/src/aggregator/consume-batch-size.js';

describe('ConsumeBatchSize', () => {
  it('stays large while a backlog returns full batches at once', () => {
    const b = new ConsumeBatchSize(100, 5_000, 10);
    for (let i = 0; i < 10; i++) b.observe(b.next, 2);
    assert.equal(b.next, 5_000);
  });

  it('shrinks to what arrives in the target time when records trickle in', () => {
    const b = new ConsumeBatchSize(100, 5_000, 10);
    b.observe(5_000, 250); // 20k records/s: a full batch took 250 ms to gather
    assert.equal(b.next, 200);
    // Then it hovers where a call takes about the target time, never waiting 250 ms again.
    for (let i = 0; i < 20; i++) {
      const n = b.next;
      b.observe(n, n / 20); // 20 records a ms
      assert.ok(b.next >= 100 && b.next <= 400, `batch ${b.next}`);
    }
  });

  it('grows back when a backlog builds up, and never leaves its bounds', () => {
    const b = new ConsumeBatchSize(100, 5_000, 10);
    b.observe(10, 1_000);
    assert.equal(b.next, 100);
    for (let i = 0; i < 8; i++) b.observe(b.next, 1);
    assert.equal(b.next, 5_000);
  });
});
