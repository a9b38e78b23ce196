import assert from 'node:assert/strict';
import Kafka from 'node-rdkafka';
import { loadConfig } from '../../server/src/config/index.js';
import { kafkaErrorAction } from '../../server/src/errors/index.js';
import { EndTracker } from '../../server/src/kafka/end-tracker.js';
import { retry } from '../../server/src/kafka/retry.js';
import { topicSpecs } from '../../server/src/kafka/topics.js';

const E = Kafka.CODES.ERRORS;
const kerr = (code: number, flags: { isFatal?: boolean; isRetriable?: boolean; isTxnRequiresAbort?: boolean } = {}) => ({ message: `code ${code}`, code, ...flags });

describe('kafkaErrorAction', () => {
  it('a fenced producer or lost membership is a migration, even when librdkafka flags it fatal', () => {
    assert.equal(kafkaErrorAction(kerr(E.ERR__FENCED, { isFatal: true })), 'rejoin');
    assert.equal(kafkaErrorAction(kerr(E.ERR_PRODUCER_FENCED)), 'rejoin');
    assert.equal(kafkaErrorAction(kerr(E.ERR_INVALID_PRODUCER_EPOCH, { isFatal: true })), 'rejoin');
    assert.equal(kafkaErrorAction(kerr(E.ERR_FENCED_INSTANCE_ID)), 'rejoin');
    assert.equal(kafkaErrorAction(kerr(E.ERR_UNKNOWN_MEMBER_ID, { isRetriable: true })), 'rejoin');
    assert.equal(kafkaErrorAction(kerr(E.ERR_ILLEGAL_GENERATION)), 'rejoin');
  });

  it('a fatal client or an authorization refusal is fatal; an error that is not Kafka\'s too', () => {
    assert.equal(kafkaErrorAction(kerr(E.ERR__FATAL)), 'fatal');
    assert.equal(kafkaErrorAction(kerr(E.ERR__STATE, { isFatal: true })), 'fatal');
    assert.equal(kafkaErrorAction(kerr(E.ERR_TOPIC_AUTHORIZATION_FAILED)), 'fatal');
    assert.equal(kafkaErrorAction(new TypeError('x is undefined')), 'fatal');
    assert.equal(kafkaErrorAction('boom'), 'fatal');
  });

  it('requires-abort wins over retriable; retriable and timeouts retry; anything else aborts', () => {
    assert.equal(kafkaErrorAction(kerr(E.ERR__TIMED_OUT, { isRetriable: true, isTxnRequiresAbort: true })), 'abort');
    assert.equal(kafkaErrorAction(kerr(E.ERR__TIMED_OUT)), 'retry');
    assert.equal(kafkaErrorAction(kerr(E.ERR_UNSTABLE_OFFSET_COMMIT)), 'retry');
    assert.equal(kafkaErrorAction(kerr(7, { isRetriable: true })), 'retry');
    assert.equal(kafkaErrorAction(kerr(E.ERR_INVALID_TXN_STATE)), 'abort');
  });
});

describe('topicSpecs: replication', () => {
  const replication = (env: NodeJS.ProcessEnv) => topicSpecs(loadConfig(env)).map((t) => [t.replication_factor, t.config?.['min.insync.replicas']]);

  it('the local stack: one replica on one node; three, two in sync for a write, on three nodes', () => {
    for (const r of replication({})) assert.deepEqual(r, [1, undefined]);
    for (const r of replication({ TALLY_KAFKA_NODES: '3' })) assert.deepEqual(r, [3, '2']);
  });

  it('an existing cluster (KAFKA_BROKERS): the brokers\' defaults, whatever TALLY_KAFKA_NODES says', () => {
    for (const nodes of ['1', '3']) {
      for (const r of replication({ KAFKA_BROKERS: 'kafka-1:9092,kafka-2:9092', TALLY_KAFKA_NODES: nodes })) assert.deepEqual(r, [-1, undefined]);
    }
  });
});

describe('EndTracker', () => {
  it('a partition is done at an EOF at or past its end, or a record reaching it', () => {
    const t = new EndTracker([{ topic: 'a', partition: 0, end: 10 }, { topic: 'a', partition: 1, end: 5 }, { topic: 'b', partition: 0, end: 3 }]);
    assert.equal(t.done, false);
    t.eof('a', 0, 9); // a marker at 9 not yet passed
    assert.equal(t.record('a', 1, 4), true); // the last record before the end: used, and done
    assert.equal(t.record('b', 0, 7), false); // past the end (the end was a marker): not used, but done
    assert.match(t.describePending(), /^a:0 at 9 of 10$/);
    t.eof('a', 0, 10);
    assert.equal(t.done, true);
  });

  it('records of partitions it does not read are not used; empty ranges are done at once', () => {
    const t = new EndTracker([{ topic: 'a', partition: 0, end: 4 }], () => 4);
    assert.equal(t.done, true);
    assert.equal(t.record('a', 1, 0), false);
  });

  it('a record before the end keeps the partition pending and says where it got to', () => {
    const t = new EndTracker([{ topic: 'a', partition: 2, end: 100 }]);
    assert.equal(t.record('a', 2, 41), true);
    assert.equal(t.done, false);
    assert.equal(t.describePending(), 'a:2 at 42 of 100');
  });
});

describe('retry', () => {
  it('returns the first success, retrying failures in between', async () => {
    const seen: number[] = [];
    const v = await retry(async (n) => {
      if (n < 3) throw new Error(`fail ${n}`);
      return n * 10;
    }, { what: 't', delayMs: 1, onRetry: (_e, n) => seen.push(n) });
    assert.equal(v, 30);
    assert.deepEqual(seen, [1, 2]);
  });

  it('bails at once on an error marked as hopeless, and stops after the attempts', async () => {
    let calls = 0;
    await assert.rejects(retry(async () => { calls++; throw new Error('hopeless'); }, { what: 't', delayMs: 1, bail: () => true }), /hopeless/);
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(retry(async () => { calls++; throw new Error(`n${calls}`); }, { what: 't', delayMs: 1, attempts: 4 }), /n4/);
    assert.equal(calls, 4);
  });

  it('gives up when the next delay would pass the deadline', async () => {
    let calls = 0;
    const t0 = Date.now();
    await assert.rejects(retry(async () => { calls++; throw new Error('down'); }, { what: 't', delayMs: 20, factor: 2, deadline: Date.now() + 100 }), /down/);
    assert.ok(calls >= 2 && calls <= 4, `calls ${calls}`);
    assert.ok(Date.now() - t0 < 200);
  });
});
