import assert from 'node:assert/strict';
import Kafka from 'node-rdkafka';
import { planRebalance } from '../../server/src/aggregator/rebalance-plan.js';
import { RebalanceQueue } from '../../server/src/kafka/rebalance-queue.js';

const { ERR__ASSIGN_PARTITIONS, ERR__REVOKE_PARTITIONS } = Kafka.CODES.ERRORS;

describe('planRebalance', () => {
  it('cooperative revoke: only the revoked partitions\' tasks go, the others stay without a restore', () => {
    assert.deepEqual(planRebalance([0, 1, 2, 3, 4, 5, 6, 7], { kind: 'revoke', partitions: [1, 4, 6, 7], protocol: 'cooperative' }),
      { drop: [1, 4, 6, 7], restore: [], keep: [0, 2, 3, 5] });
  });

  it('cooperative assign: only partitions without a task are restored', () => {
    assert.deepEqual(planRebalance([0, 2, 3, 5], { kind: 'assign', partitions: [1, 6], protocol: 'cooperative' }),
      { drop: [], restore: [1, 6], keep: [0, 2, 3, 5] });
    // The empty assignment that follows a cooperative revocation changes nothing.
    assert.deepEqual(planRebalance([3, 0], { kind: 'assign', partitions: [], protocol: 'cooperative' }),
      { drop: [], restore: [], keep: [0, 3] });
  });

  it('a cooperative revocation of partitions without a task (dropped by a rejoin) drops nothing', () => {
    assert.deepEqual(planRebalance([], { kind: 'revoke', partitions: [0, 1], protocol: 'cooperative' }),
      { drop: [], restore: [], keep: [] });
  });

  it('eager: a revocation drops every task, an assignment restores every partition in it', () => {
    assert.deepEqual(planRebalance([2, 0, 1], { kind: 'revoke', partitions: [0, 1, 2], protocol: 'eager' }),
      { drop: [0, 1, 2], restore: [], keep: [] });
    assert.deepEqual(planRebalance([], { kind: 'assign', partitions: [0, 1, 2, 3], protocol: 'eager' }),
      { drop: [], restore: [0, 1, 2, 3], keep: [] });
  });
});

describe('RebalanceQueue', () => {
  /** What the queue asks of a consumer: the group's protocol, and (once closed) its assignment. */
  function consumerWith(protocol: 'COOPERATIVE' | 'EAGER') {
    const calls: string[] = [];
    const client = {
      rebalanceProtocol: () => protocol,
      assignments: () => [{ topic: 'in', partition: 9 }],
      incrementalUnassign: (a: Kafka.Assignment[]) => calls.push(`incrementalUnassign ${a.map((x) => x.partition).join(',')}`),
      unassign: () => calls.push('unassign'),
    } as unknown as Kafka.KafkaConsumer;
    return { client, calls };
  }
  const tps = (topic: string, ...ps: number[]) => ps.map((partition) => ({ topic, partition }));
  const code = (c: number) => ({ code: c, message: `code ${c}` }) as Kafka.LibrdKafkaError;

  it('queues cooperative increments with distinct sorted partition numbers and their protocol', () => {
    const { client } = consumerWith('COOPERATIVE');
    const q = new RebalanceQueue();
    const cb = q.callback(() => client);
    cb(code(ERR__ASSIGN_PARTITIONS), tps('in', 3, 1));
    cb(code(ERR__REVOKE_PARTITIONS), tps('in', 3));
    assert.deepEqual(q.next(), { kind: 'assign', partitions: [1, 3], assignment: tps('in', 3, 1), protocol: 'cooperative' });
    assert.deepEqual(q.next(), { kind: 'revoke', partitions: [3], assignment: tps('in', 3), protocol: 'cooperative' });
    assert.equal(q.pending, false);
  });

  it('a failed rebalance revokes what is still held: every increment since, less what was revoked', () => {
    const errors: number[] = [];
    const { client } = consumerWith('COOPERATIVE');
    const q = new RebalanceQueue((err) => errors.push(err.code));
    const cb = q.callback(() => client);
    cb(code(ERR__ASSIGN_PARTITIONS), tps('in', 0, 1));
    cb(code(ERR__ASSIGN_PARTITIONS), tps('in', 5));
    cb(code(ERR__REVOKE_PARTITIONS), tps('in', 1));
    cb(code(Kafka.CODES.ERRORS.ERR__FATAL), []);
    const events = [q.next(), q.next(), q.next(), q.next()];
    assert.deepEqual(events[3]?.partitions, [0, 5]);
    assert.equal(events[3]?.kind, 'revoke');
    assert.deepEqual(errors, [Kafka.CODES.ERRORS.ERR__FATAL]);
  });

  it('once closed, a revocation lets go at once, as its protocol wants, and an assignment is ignored', () => {
    const coop = consumerWith('COOPERATIVE');
    const q1 = new RebalanceQueue();
    q1.close();
    q1.callback(() => coop.client)(code(ERR__REVOKE_PARTITIONS), tps('in', 9));
    q1.callback(() => coop.client)(code(ERR__ASSIGN_PARTITIONS), tps('in', 2));
    assert.deepEqual(coop.calls, ['incrementalUnassign 9']);
    const eager = consumerWith('EAGER');
    const q2 = new RebalanceQueue();
    q2.close();
    q2.callback(() => eager.client)(code(ERR__REVOKE_PARTITIONS), tps('in', 9));
    assert.deepEqual(eager.calls, ['unassign']);
    assert.equal(q1.pending || q2.pending, false);
  });
});
