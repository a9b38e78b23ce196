import assert from 'node:assert/strict';
import Kafka from 'node-rdkafka';
import pino from 'pino';
import { AggregatorMetrics } from '../../server/src/aggregator/aggregator-metrics.js';
import { TransactionOwner } from '../../server/src/aggregator/transaction-owner.js';
import { TaskCorruptedError, TaskMigratedError } from '../../server/src/errors/index.js';
import type { OutgoingRecord, TransactionalClient } from '../../server/src/kafka/index.js';

const E = Kafka.CODES.ERRORS;
type Call = 'connect' | 'initTransactions' | 'beginTransaction' | 'produce' | 'sendOffsetsToTransaction' | 'commitTransaction' | 'abortTransaction' | 'disconnect';

/** An error as librdkafka reports it: a code and its flags. */
const kafkaErr = (code: number, flags: { isFatal?: boolean; isRetriable?: boolean; isTxnRequiresAbort?: boolean } = {}) =>
  Object.assign(new Error(`librdkafka error ${code}`), { code, ...flags });

/** The broker side of the fake: what the next calls fail with, and calls held until released. */
class FakeKafka {
  readonly clients: FakeClient[] = [];
  private readonly failures = new Map<Call, unknown[]>();
  private readonly holds = new Map<Call, Promise<void>>();

  readonly newClient = (): TransactionalClient => {
    const client = new FakeClient(this);
    this.clients.push(client);
    return client;
  };

  /** The next calls of `call` (by any client) fail with `errors`, in order. */
  fail(call: Call, ...errors: unknown[]): void {
    this.failures.set(call, [...(this.failures.get(call) ?? []), ...errors]);
  }

  /** `call` waits until the returned function is called. */
  hold(call: Call): () => void {
    let release = () => undefined as void;
    this.holds.set(call, new Promise<void>((resolve) => { release = resolve; }));
    return () => {
      this.holds.delete(call);
      release();
    };
  }

  async answer(call: Call): Promise<void> {
    await this.holds.get(call);
    const err = this.failures.get(call)?.shift();
    if (err !== undefined) throw err;
  }
}

class FakeClient implements TransactionalClient {
  readonly calls: Call[] = [];
  readonly produced: OutgoingRecord[] = [];
  readonly offsets: Kafka.TopicPartitionOffset[][] = [];

  constructor(private readonly kafka: FakeKafka) {}

  connect = () => this.step('connect');
  initTransactions = () => this.step('initTransactions');
  beginTransaction = () => this.step('beginTransaction');
  produce = (record: OutgoingRecord) => {
    this.produced.push(record);
    return this.step('produce');
  };
  sendOffsetsToTransaction = (offsets: Kafka.TopicPartitionOffset[]) => {
    this.offsets.push(offsets);
    return this.step('sendOffsetsToTransaction');
  };
  commitTransaction = () => this.step('commitTransaction');
  abortTransaction = () => this.step('abortTransaction');
  disconnect = () => this.step('disconnect');

  private step(call: Call): Promise<void> {
    this.calls.push(call);
    return this.kafka.answer(call);
  }
}

const record = (n: number): OutgoingRecord => ({ topic: 'impression-counts', partition: 0, key: `k${n}`, value: Buffer.from(`v${n}`) });
const OFFSETS: Kafka.TopicPartitionOffset[] = [{ topic: 'impressions', partition: 0, offset: 42 }];
const TRANSACTION: Call[] = ['beginTransaction', 'sendOffsetsToTransaction', 'produce', 'produce', 'commitTransaction'];

describe('TransactionOwner', () => {
  let kafka: FakeKafka;
  let metrics: AggregatorMetrics;
  let owner: TransactionOwner;

  beforeEach(async () => {
    kafka = new FakeKafka();
    metrics = new AggregatorMetrics();
    owner = new TransactionOwner(kafka.newClient, pino({ level: 'silent' }), metrics, { initRetryDelayMs: 1 });
    await owner.init();
  });

  async function transactions(outcome: 'committed' | 'aborted'): Promise<number> {
    return (await metrics.transactions.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  }

  /** Begins a transaction of two records; resolves `committed` once the broker committed it. */
  function begin(): { committed: () => boolean } {
    let committed = false;
    owner.begin([record(1), record(2)], OFFSETS, () => { committed = true; });
    return { committed: () => committed };
  }

  it('commits: begin, the offsets, every record, commit; settle resolves and the next may begin', async () => {
    assert.equal(owner.state, 'ready');
    assert.deepEqual(kafka.clients[0].calls, ['connect', 'initTransactions']);
    const tx = begin();
    assert.equal(owner.inFlight, true);
    await owner.settle();
    assert.equal(tx.committed(), true);
    assert.equal(owner.state, 'ready');
    const client = kafka.clients[0];
    assert.deepEqual(client.calls.slice(2), TRANSACTION);
    assert.deepEqual(client.produced.map((r) => r.key), ['k1', 'k2']);
    assert.deepEqual(client.offsets, [OFFSETS]);
    assert.equal(await transactions('committed'), 1);
    await owner.settle(); // nothing in flight: nothing to wait for
    begin();
    await owner.settle();
    assert.equal(await transactions('committed'), 2);
  });

  it('one transaction in flight: a second begin before settle throws, also once the first has committed', async () => {
    const release = kafka.hold('commitTransaction');
    begin();
    assert.throws(() => begin(), /TransactionOwner\.begin\(\) in state (inTransaction|committing)/);
    release();
    await new Promise((r) => setImmediate(r));
    assert.equal(owner.state, 'committed');
    assert.throws(() => begin(), /TransactionOwner\.begin\(\) in state committed \(allowed in ready\)/);
    await owner.settle();
    begin();
    await owner.settle();
    assert.equal(kafka.clients[0].calls.filter((c) => c === 'beginTransaction').length, 2);
  });

  it('a commit librdkafka calls retriable is retried (it is idempotent), then committed', async () => {
    kafka.fail('commitTransaction', kafkaErr(E.ERR__TIMED_OUT, { isRetriable: true }), kafkaErr(E.ERR_COORDINATOR_NOT_AVAILABLE, { isRetriable: true }));
    const tx = begin();
    await owner.settle();
    assert.equal(tx.committed(), true);
    const calls = kafka.clients[0].calls;
    assert.equal(calls.filter((c) => c === 'commitTransaction').length, 3);
    assert.equal(calls.includes('abortTransaction'), false);
  });

  it('a retriable commit that keeps failing is aborted after its attempts: corrupted', async () => {
    kafka.fail('commitTransaction', ...Array.from({ length: 5 }, () => kafkaErr(E.ERR__TIMED_OUT, { isRetriable: true })));
    begin();
    await assert.rejects(owner.settle(), TaskCorruptedError);
    const calls = kafka.clients[0].calls;
    assert.equal(calls.filter((c) => c === 'commitTransaction').length, 5);
    assert.equal(calls.at(-1), 'abortTransaction');
  });

  it('requires abort: the transaction is aborted, settle throws TaskCorruptedError, the same producer goes on', async () => {
    kafka.fail('commitTransaction', kafkaErr(E.ERR__TIMED_OUT, { isRetriable: true, isTxnRequiresAbort: true }));
    const tx = begin();
    await new Promise((r) => setImmediate(r));
    assert.equal(owner.failed, true);
    assert.equal(owner.state, 'corrupted');
    await assert.rejects(owner.settle(), (err: unknown) => err instanceof TaskCorruptedError && /^transaction aborted: librdkafka error/.test(err.message));
    assert.equal(tx.committed(), false);
    assert.equal(owner.state, 'ready');
    assert.equal(kafka.clients.length, 1);
    assert.deepEqual(kafka.clients[0].calls.slice(2), [...TRANSACTION, 'abortTransaction']);
    assert.equal(await transactions('aborted'), 1);
    begin();
    await owner.settle();
    assert.equal(await transactions('committed'), 1);
  });

  it('fenced: the producer is replaced (connect, initTransactions), settle throws TaskMigratedError, the next transaction uses the new one', async () => {
    kafka.fail('sendOffsetsToTransaction', kafkaErr(E.ERR__FENCED, { isFatal: true }));
    const tx = begin();
    await assert.rejects(owner.settle(), TaskMigratedError);
    assert.equal(tx.committed(), false);
    const [old, replacement] = kafka.clients;
    assert.deepEqual(old.calls.slice(2), ['beginTransaction', 'sendOffsetsToTransaction', 'disconnect']);
    assert.deepEqual(replacement.calls, ['connect', 'initTransactions']);
    begin();
    await owner.settle();
    assert.deepEqual(replacement.calls.slice(2), TRANSACTION);
  });

  it('offsets met a moved group generation (a rebalance round): aborted and the same transaction run again, then committed', async () => {
    const quick = new TransactionOwner(kafka.newClient, pino({ level: 'silent' }), metrics, { initRetryDelayMs: 1, generationRetryDelayMs: 1 });
    await quick.init();
    kafka.fail('sendOffsetsToTransaction', kafkaErr(E.ERR_ILLEGAL_GENERATION), kafkaErr(E.ERR_REBALANCE_IN_PROGRESS));
    let committed = false;
    quick.begin([record(1), record(2)], OFFSETS, () => { committed = true; });
    await quick.settle();
    assert.equal(committed, true);
    const run = ['beginTransaction', 'sendOffsetsToTransaction'];
    assert.deepEqual(kafka.clients.at(-1)?.calls.slice(2), [...run, 'abortTransaction', ...run, 'abortTransaction', ...TRANSACTION]);
    assert.deepEqual(kafka.clients.at(-1)?.offsets, [OFFSETS, OFFSETS, OFFSETS]);
  });

  it('a generation that stays wrong through every run (membership lost) is a migration', async () => {
    const quick = new TransactionOwner(kafka.newClient, pino({ level: 'silent' }), metrics, { initRetryDelayMs: 1, generationAttempts: 3, generationRetryDelayMs: 1 });
    await quick.init();
    kafka.fail('sendOffsetsToTransaction', ...Array.from({ length: 3 }, () => kafkaErr(E.ERR_ILLEGAL_GENERATION)));
    quick.begin([record(1)], OFFSETS, () => assert.fail('committed'));
    await assert.rejects(quick.settle(), TaskMigratedError);
    assert.equal(kafka.clients.at(-2)?.calls.filter((c) => c === 'sendOffsetsToTransaction').length, 3);
  });

  it('a call librdkafka never answers (nor its disconnect): after callDeadlineMs the producer is replaced, migrated', async () => {
    const stuck = new TransactionOwner(kafka.newClient, pino({ level: 'silent' }), metrics, { initRetryDelayMs: 1, callDeadlineMs: 30 });
    await stuck.init();
    kafka.hold('sendOffsetsToTransaction');
    kafka.hold('disconnect');
    let committed = false;
    stuck.begin([record(1)], OFFSETS, () => { committed = true; });
    await assert.rejects(stuck.settle(), (err: unknown) => err instanceof TaskMigratedError
      && /sendOffsetsToTransaction: librdkafka did not answer within 30 ms; producer recreated/.test(err.message));
    assert.equal(committed, false);
    const [, old, replacement] = kafka.clients;
    assert.deepEqual(old.calls.slice(2), ['beginTransaction', 'sendOffsetsToTransaction', 'disconnect']);
    assert.deepEqual(replacement.calls.slice(0, 2), ['connect', 'initTransactions']);
    assert.equal(stuck.state, 'ready');
  });

  it('an abort that fails too: the producer is replaced (its initTransactions aborts), migrated', async () => {
    kafka.fail('commitTransaction', kafkaErr(E.ERR_INVALID_TXN_STATE));
    kafka.fail('abortTransaction', kafkaErr(E.ERR__TRANSPORT));
    begin();
    await assert.rejects(owner.settle(), (err: unknown) => err instanceof TaskMigratedError && /abort failed after/.test(err.message));
    assert.deepEqual(kafka.clients[0].calls.slice(-2), ['abortTransaction', 'disconnect']);
    assert.equal(kafka.clients.length, 2);
    assert.equal(owner.state, 'ready');
  });

  it('no new producer to be had: broken; settle throws why, and close is all that is left', async () => {
    const refusal = kafkaErr(E.ERR__TRANSPORT);
    owner = new TransactionOwner(kafka.newClient, pino({ level: 'silent' }), metrics, { initAttempts: 2, initRetryDelayMs: 1 });
    await owner.init();
    kafka.fail('beginTransaction', kafkaErr(E.ERR_PRODUCER_FENCED));
    kafka.fail('connect', refusal, refusal);
    begin();
    await assert.rejects(owner.settle(), (err: unknown) => err === refusal);
    assert.equal(owner.state, 'broken');
    assert.throws(() => begin(), /begin\(\) in state broken/);
    await assert.rejects(owner.settle(), (err: unknown) => err === refusal);
    await owner.close();
    assert.equal(owner.state, 'closed');
  });

  it('init tries again with a new producer each time', async () => {
    kafka.fail('initTransactions', kafkaErr(E.ERR__TIMED_OUT, { isRetriable: true }));
    const second = new TransactionOwner(kafka.newClient, pino({ level: 'silent' }), metrics, { initRetryDelayMs: 1 });
    await second.init();
    const [failed, working] = kafka.clients.slice(1);
    assert.deepEqual(failed.calls, ['connect', 'initTransactions', 'disconnect']);
    assert.deepEqual(working.calls, ['connect', 'initTransactions']);
    assert.equal(second.state, 'ready');
  });

  it('rejects calls made in the wrong state, naming the call and the state', async () => {
    const fresh = new TransactionOwner(kafka.newClient, pino({ level: 'silent' }), metrics);
    assert.throws(() => fresh.begin([], OFFSETS, () => undefined), /TransactionOwner\.begin\(\) in state created/);
    await assert.rejects(fresh.settle(), /TransactionOwner\.settle\(\) in state created/);
    await assert.rejects(owner.init(), /TransactionOwner\.init\(\) in state ready/);
    await owner.close();
    assert.throws(() => begin(), /TransactionOwner\.begin\(\) in state closed/);
    await assert.rejects(owner.settle(), /TransactionOwner\.settle\(\) in state closed/);
    await owner.close(); // closing twice is fine
    await fresh.close();
    assert.equal(fresh.state, 'closed');
  });

  it('close while committing waits for the commit to end, then disconnects', async () => {
    const release = kafka.hold('commitTransaction');
    const tx = begin();
    await new Promise((r) => setImmediate(r));
    assert.equal(owner.state, 'committing');
    let closed = false;
    const closing = owner.close().then(() => { closed = true; });
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(closed, false);
    assert.equal(kafka.clients[0].calls.includes('disconnect'), false);
    release();
    await closing;
    assert.equal(tx.committed(), true);
    assert.equal(owner.state, 'closed');
    assert.equal(kafka.clients[0].calls.at(-1), 'disconnect');
  });
});
