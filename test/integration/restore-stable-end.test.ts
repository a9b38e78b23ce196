/**
 * Restore cannot stop short (docs/architecture.md, "Recovery"): an aggregator rebuilding its tasks
 * reads every state partition up to the high watermark it took first, however long the last
 * stable offset stays behind it. Here another producer's transaction, left open on one partition
 * of both state topics, holds that partition's stable end below state the aggregator committed
 * later; the aggregator is killed and restarted meanwhile. A restore that read only to the stable
 * end would be done at once, without the later ids, and count their copies a second time.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { TallyConfig } from '../../server/src/config/index.js';
import { homePartition } from '../../server/src/impression/index.js';
import { Consumer, TransactionalProducer } from '../../server/src/kafka/index.js';
import { createSandbox, eventually, logLines, sleep, waitForLog, type Sandbox } from '../kit/harness.js';
import { produceEvents, spreadEvents, truthOf } from '../kit/hand-events.js';
import { assertExact, Pipeline } from '../kit/pipeline.js';

/** The partition of impression-counts and of the dedup changelog whose stable end is held back. */
const HELD = 5;
/**
 * How long the open transaction holds the restarted aggregator's restore: a fault of a chosen
 * length. A restore that stopped at the stable end finishes in well under a second here.
 */
const HOLD_MS = 3_000;

/** The broker's view of the partitions: high watermarks, last stable offsets, the aggregator's committed offsets. */
class BrokerView {
  /** read_uncommitted: its ListOffsets answers the high watermark. */
  private readonly uncommitted: Consumer;
  /** read_committed: its ListOffsets answers the last stable offset; in the aggregator's group, never joining it, to read its committed offsets. */
  private readonly committed: Consumer;

  constructor(private readonly config: TallyConfig) {
    const brokers = config.kafka.brokers;
    this.uncommitted = new Consumer({ brokers, groupId: `restore-test-hw-${crypto.randomUUID()}`, isolation: 'read_uncommitted' });
    this.committed = new Consumer({ brokers, groupId: config.groups.aggregator, isolation: 'read_committed' });
  }

  async connect(): Promise<void> {
    await Promise.all([this.uncommitted.connect(), this.committed.connect()]);
  }

  async disconnect(): Promise<void> {
    await Promise.all([this.uncommitted.disconnect(), this.committed.disconnect()]);
  }

  async ends(topic: string, partition: number): Promise<{ high: number; stable: number }> {
    const [high, stable] = await Promise.all([
      this.uncommitted.queryWatermarkOffsets(topic, partition, 10_000),
      this.committed.queryWatermarkOffsets(topic, partition, 10_000),
    ]);
    return { high: high.highOffset, stable: stable.highOffset };
  }

  /** Waits until the aggregator has committed every impression produced so far (offsets and state in one transaction). */
  async awaitAggregatorCommitted(what: string): Promise<void> {
    const { impressions } = this.config.topics;
    const partitions = Array.from({ length: this.config.partitions }, (_, partition) => ({ topic: impressions, partition }));
    const ends = await Promise.all(partitions.map(async (tp) => (await this.ends(impressions, tp.partition)).high));
    await eventually(what, async () => {
      const committed = await this.committed.committed(partitions, 10_000);
      return committed.every((tp) => Math.max(0, tp.offset) >= ends[tp.partition]);
    }, 60_000, 100);
  }
}

describe('restore to the high watermark (real Kafka + ClickHouse, real processes)', function () {
  this.timeout(180_000);
  let sb: Sandbox;
  let pipeline: Pipeline;
  let broker: BrokerView | undefined;
  let foreign: TransactionalProducer | undefined;

  afterEach(async function () {
    this.timeout(120_000);
    // A test that failed with the foreign transaction open: abort it rather than wait out its timeout.
    await foreign?.abortTransaction().catch(() => undefined);
    await foreign?.disconnect();
    await broker?.disconnect();
    await pipeline?.stopAll();
    await sb?.cleanup();
  });

  it('a restore meeting a state partition whose stable end is held behind its high watermark waits for it, then counts every copy as a duplicate', async () => {
    sb = await createSandbox('restorelso');
    pipeline = new Pipeline(sb);
    const { config } = sb;
    const { counts, changelog } = config.topics;
    broker = new BrokerView(config);
    await broker.connect();
    pipeline.startSink();
    const first = pipeline.startAggregator('restore-1');
    const T = Date.now();
    const before = spreadEvents('rs-a-', 400, T - 4_000, T - 2_000);
    await produceEvents(config, before);
    await broker.awaitAggregatorCommitted('the first traffic committed');

    // Another producer (its own transactional id) opens a transaction on partition HELD of both state
    // topics and leaves it open. Its records are tombstones of keys no one writes, which the sink, the
    // live feed and a restore would pass over; and being aborted below, no read_committed reader ever gets them.
    foreign = new TransactionalProducer({ brokers: config.kafka.brokers, transactionalId: `restore-test-foreign-${crypto.randomUUID()}`, transactionTimeoutMs: 120_000 });
    await foreign.connect();
    await foreign.initTransactions();
    await foreign.beginTransaction();
    for (const topic of [counts, changelog]) await foreign.produce({ topic, partition: HELD, key: 'restore-test-open-transaction', value: null });
    const view = broker;
    await eventually('the open transaction to hold both stable ends', async () => {
      const ends = await Promise.all([view.ends(counts, HELD), view.ends(changelog, HELD)]);
      return ends.every((e) => e.stable < e.high);
    }, 30_000, 100);
    const heldAt = { counts: await broker.ends(counts, HELD), changelog: await broker.ends(changelog, HELD) };

    // More traffic, counted and committed: on partition HELD its rows and ids land above the held stable end.
    const after = spreadEvents('rs-b-', 800, T - 2_000, T);
    assert.ok(after.some((e) => homePartition(e.impression_id, config.partitions) === HELD), `some later impressions belong to partition ${HELD}`);
    await produceEvents(config, after);
    await broker.awaitAggregatorCommitted('the later traffic committed');
    for (const [name, topic] of [['counts', counts], ['changelog', changelog]] as const) {
      const ends = await broker.ends(topic, HELD);
      assert.equal(ends.stable, heldAt[name].stable, `${topic}:${HELD}: the stable end is still held`);
      assert.ok(ends.high > heldAt[name].high, `${topic}:${HELD}: the aggregator committed state above it (high watermark ${heldAt[name].high} → ${ends.high})`);
    }

    // The crash, and a restart whose restore meets partition HELD with its stable end < high watermark.
    await first.kill();
    const second = pipeline.startAggregator('restore-1');
    await waitForLog(second, 'aggregator.partitions_assigned', 60_000, (l) => (l.partitions as number[]).includes(HELD));
    await sleep(HOLD_MS);
    assert.deepEqual(logLines(second, 'aggregator.restored'), [], `no restore finished while the stable end of partition ${HELD} was held`);
    for (const topic of [counts, changelog]) {
      const ends = await broker.ends(topic, HELD);
      assert.ok(ends.stable < ends.high, `${topic}:${HELD}: held through the restore (${ends.stable} < ${ends.high})`);
    }
    const abortedAt = Date.now();
    await foreign.abortTransaction();
    const restored = await waitForLog(second, 'aggregator.restored', 60_000);
    // The restore (its own timing: `ms` before the line) was under way while the transaction was open, and ended after.
    assert.ok(Number(restored.time) - Number(restored.ms) < abortedAt, 'the restore began while the foreign transaction was open');
    assert.ok(Number(restored.time) >= abortedAt, 'the restore finished only once the foreign transaction was aborted');
    assert.deepEqual(restored.partitions, Array.from({ length: config.partitions }, (_, p) => p), 'the restart owns every partition');
    assert.equal(restored.ids, before.length + after.length, 'every id counted before the crash is restored');

    // Copies of a third of everything counted (the later traffic too), and new traffic: exact totals, copies as duplicates.
    const copies = [...before, ...after].filter((_, i) => i % 3 === 0);
    const fresh = spreadEvents('rs-c-', 400, Date.now() - 1_000, Date.now());
    await produceEvents(config, [...copies, ...fresh]);
    await assertExact(pipeline, truthOf(config, 'rs-', [...before, ...after, ...fresh], copies.length));
  });
});
