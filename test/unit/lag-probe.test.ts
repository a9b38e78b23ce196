/**
 * The pipeline status's lag probe (probeGaps) against a scripted consumer that behaves as
 * node-rdkafka does: a consume batch's partition EOFs are emitted before its records are handed over.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type Kafka from 'node-rdkafka';
import type { Consumer } from '../../server/src/kafka/index.js';
import { gapKey, probeGaps, type Gap } from '../../server/src/live/pipeline-monitor.js';

interface Batch {
  eofs?: Array<{ topic: string; partition: number; offset: number }>;
  records?: Array<{ topic: string; partition: number; offset: number }>;
}

/** Hands out the scripted batches, then empty ones (as consume(n) does when nothing more comes). */
function scriptedConsumer(batches: Batch[]): { consumer: Consumer; assigned: Kafka.Assignment[] } {
  const assigned: Kafka.Assignment[] = [];
  const client = Object.assign(new EventEmitter(), {
    assign: (a: Kafka.Assignment[]) => assigned.push(...a),
    unassign: () => undefined,
  });
  const consume = async (): Promise<Kafka.Message[]> => {
    const batch = batches.shift();
    if (batch === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return [];
    }
    for (const e of batch.eofs ?? []) client.emit('partition.eof', e);
    return (batch.records ?? []).map((r) => ({ ...r, value: Buffer.from('x'), size: 1 }));
  };
  return { consumer: { client, consume } as unknown as Consumer, assigned };
}

const gap = (partition: number, committed: number, end: number): Gap => ({ topic: 'counts', partition, committed, end });

describe('probeGaps', () => {
  it('counts the records of a batch that also carries the partition EOF', async () => {
    const { consumer, assigned } = scriptedConsumer([{
      eofs: [{ topic: 'counts', partition: 1, offset: 3 }],
      records: [0, 1, 2].map((offset) => ({ topic: 'counts', partition: 1, offset })),
    }]);
    const lag = await probeGaps(consumer, [gap(1, 0, 3)], 1_000);
    assert.deepEqual([...lag], [[gapKey('counts', 1), 3]]);
    assert.deepEqual(assigned, [{ topic: 'counts', partition: 1, offset: 0 }], 'read from the committed offset');
  });

  it('a trailing commit marker is no lag: a settled partition probes as 0', async () => {
    // Committed 41: the last record was 40; offset 41 is the transaction's commit marker, never delivered.
    const { consumer } = scriptedConsumer([{ eofs: [{ topic: 'counts', partition: 0, offset: 42 }] }]);
    assert.deepEqual([...await probeGaps(consumer, [gap(0, 41, 42)], 1_000)], [[gapKey('counts', 0), 0]]);
  });

  it('only records below the end count: markers between them and records past the end do not', async () => {
    const { consumer } = scriptedConsumer([
      { records: [{ topic: 'counts', partition: 2, offset: 10 }] },
      // 11 and 13 are markers; 15 was written after the end was taken.
      { eofs: [{ topic: 'counts', partition: 2, offset: 16 }], records: [12, 14, 15].map((offset) => ({ topic: 'counts', partition: 2, offset })) },
    ]);
    assert.deepEqual([...await probeGaps(consumer, [gap(2, 10, 15)], 1_000)], [[gapKey('counts', 2), 3]]);
  });

  it('at the deadline, a gap not read through is left out (its offset difference stands); one a record reached is kept', async () => {
    const { consumer } = scriptedConsumer([{
      // Partition 3: a transaction still open at 5 (EOF at the stable end, short of the end 8).
      eofs: [{ topic: 'counts', partition: 3, offset: 5 }],
      records: [{ topic: 'counts', partition: 3, offset: 4 }, { topic: 'counts', partition: 4, offset: 6 }],
    }]);
    const lag = await probeGaps(consumer, [gap(3, 4, 8), gap(4, 6, 7)], 100);
    assert.deepEqual([...lag], [[gapKey('counts', 4), 1]]);
  });
});
