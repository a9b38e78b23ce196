/**
 * Proves the local stack is real: Kafka transactions and offset commits behave as exactly-once
 * needs, ClickHouse's ReplacingMergeTree keeps the highest version, and data survives down/up.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { createClickHouse, queryRows } from '../../server/src/clickhouse/index.js';
import { loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { kafkaError } from '../../server/src/errors/index.js';
import { DeliveringProducer, ensureTopics } from '../../server/src/kafka/index.js';
import { stackDown, stackStatus, stackUp } from '../../server/src/stack/index.js';
import { createSandbox, freePort, type Sandbox } from '../kit/harness.js';

function cb<T = void>(fn: (done: (err: Kafka.LibrdKafkaError | null | undefined, v?: T) => void) => void, what: string): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(kafkaError(what, err)) : resolve(v as T))));
}

async function transactionalProducer(brokers: string, id: string): Promise<Kafka.Producer> {
  const p = new Kafka.Producer({ 'metadata.broker.list': brokers, 'transactional.id': id, 'enable.idempotence': true, log_level: 3 });
  await cb((d) => p.connect({ timeout: 10_000 }, (e) => d(e)), 'connect');
  p.setPollInterval(20);
  await cb((d) => p.initTransactions(30_000, d), 'initTransactions');
  return p;
}

/** Reads a whole topic from the beginning with the given isolation level; returns values as strings. */
async function readAll(brokers: string, topic: string, partitions: number, isolation: 'read_committed' | 'read_uncommitted'): Promise<string[]> {
  const c = new Kafka.KafkaConsumer({
    'metadata.broker.list': brokers, 'group.id': `reader-${crypto.randomUUID()}`, 'enable.auto.commit': false,
    'enable.partition.eof': true, 'isolation.level': isolation, log_level: 3,
  }, {});
  await cb((d) => c.connect({ timeout: 10_000 }, (e) => d(e)), 'connect');
  const pending = new Set(Array.from({ length: partitions }, (_, p) => p));
  c.on('partition.eof', (e) => pending.delete(e.partition));
  c.assign(Array.from({ length: partitions }, (_, p) => ({ topic, partition: p, offset: -2 })));
  const values: string[] = [];
  const deadline = Date.now() + 30_000;
  while (pending.size > 0 && Date.now() < deadline) {
    const msgs = await cb<Kafka.Message[]>((d) => c.consume(1000, d), 'consume');
    for (const m of msgs) values.push(m.value?.toString() ?? '');
  }
  await new Promise<void>((r) => c.disconnect(() => r()));
  assert.equal(pending.size, 0, 'reached the end of every partition');
  return values;
}

describe('local stack: Kafka transactions (real broker)', function () {
  let sb: Sandbox;
  before(async function () {
    this.timeout(300_000);
    sb = await createSandbox('stack', { TALLY_PARTITIONS: '2' });
  });
  after(async () => sb?.cleanup());

  it('a read_committed consumer sees the committed transaction and not the aborted one', async () => {
    const { brokers } = sb.config.kafka;
    const topic = sb.config.topics.counts;
    const p = await transactionalProducer(brokers, `t-${crypto.randomUUID()}`);
    await cb((d) => p.beginTransaction(d), 'begin');
    for (let i = 0; i < 5; i++) p.produce(topic, i % 2, Buffer.from(`committed-${i}`), `k${i}`);
    await cb((d) => p.commitTransaction(10_000, d), 'commit');
    await cb((d) => p.beginTransaction(d), 'begin');
    for (let i = 0; i < 3; i++) p.produce(topic, i % 2, Buffer.from(`aborted-${i}`), `a${i}`);
    await cb((d) => p.flush(10_000, d), 'flush');
    await cb((d) => p.abortTransaction(10_000, d), 'abort');
    await new Promise<void>((r) => p.disconnect(() => r()));

    const committed = (await readAll(brokers, topic, 2, 'read_committed')).sort();
    assert.deepEqual(committed, ['committed-0', 'committed-1', 'committed-2', 'committed-3', 'committed-4']);
    // The aborted records are in the log all the same: read_uncommitted shows them.
    const uncommitted = await readAll(brokers, topic, 2, 'read_uncommitted');
    assert.equal(uncommitted.filter((v) => v.startsWith('aborted-')).length, 3);
  });

  it('sendOffsetsToTransaction moves the group offset only when the transaction commits', async () => {
    const { brokers } = sb.config.kafka;
    const input = sb.config.topics.impressions;
    const group = `g-${crypto.randomUUID()}`;
    const seed = new DeliveringProducer(brokers);
    await seed.connect();
    await seed.send(Array.from({ length: 10 }, (_, i) => ({ topic: input, partition: 0, key: `k${i}`, value: Buffer.from(`v${i}`) })));
    await seed.disconnect();

    const consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': brokers, 'group.id': group, 'enable.auto.commit': false, 'isolation.level': 'read_committed', log_level: 3,
    }, { 'auto.offset.reset': 'earliest' });
    await cb((d) => consumer.connect({ timeout: 10_000 }, (e) => d(e)), 'connect');
    consumer.assign([{ topic: input, partition: 0, offset: 0 }]);
    const got: Kafka.Message[] = [];
    const deadline = Date.now() + 20_000;
    while (got.length < 10 && Date.now() < deadline) got.push(...(await cb<Kafka.Message[]>((d) => consumer.consume(100, d), 'consume')));
    assert.equal(got.length, 10);

    const committedOffset = async () => (await cb<Kafka.TopicPartitionOffset[]>((d) => consumer.committed([{ topic: input, partition: 0 }], 10_000, d), 'committed'))[0].offset ?? -1001;
    const p = await transactionalProducer(brokers, `t-${crypto.randomUUID()}`);

    await cb((d) => p.beginTransaction(d), 'begin');
    await cb((d) => p.sendOffsetsToTransaction([{ topic: input, partition: 0, offset: 4 }], consumer, 10_000, d), 'sendOffsets');
    await cb((d) => p.abortTransaction(10_000, d), 'abort');
    const afterAbort = await committedOffset();
    assert.ok(afterAbort < 0, `an aborted transaction commits no offset (got ${afterAbort})`);

    await cb((d) => p.beginTransaction(d), 'begin');
    p.produce(sb.config.topics.counts, 0, Buffer.from('out'), 'k');
    await cb((d) => p.sendOffsetsToTransaction([{ topic: input, partition: 0, offset: 10 }], consumer, 10_000, d), 'sendOffsets');
    await cb((d) => p.commitTransaction(10_000, d), 'commit');
    assert.equal(await committedOffset(), 10, 'the committed transaction moved the group offset to 10');

    await new Promise<void>((r) => p.disconnect(() => r()));
    await new Promise<void>((r) => consumer.disconnect(() => r()));
  });
});

describe('local stack: DeliveringProducer (real broker)', function () {
  let sb: Sandbox;
  before(async function () {
    this.timeout(300_000);
    sb = await createSandbox('deliver', { TALLY_PARTITIONS: '1' });
  });
  after(async () => sb?.cleanup());

  it('a send larger than librdkafka\'s local queue waits for room, resolves once all are acknowledged, keeps the order', async () => {
    const { brokers } = sb.config.kafka;
    const topic = sb.config.topics.impressions;
    // Room for 50 records: the other 1,950 of one send go through the wait-for-room path.
    const producer = new DeliveringProducer(brokers, { 'queue.buffering.max.messages': 50 });
    await producer.connect();
    const values = Array.from({ length: 2_000 }, (_, i) => `v${i}`);
    await producer.send(values.map((v, i) => ({ topic, partition: 0, key: `k${i}`, value: Buffer.from(v) })));
    await producer.disconnect();
    assert.deepEqual(await readAll(brokers, topic, 1, 'read_uncommitted'), values);
  });
});

describe('local stack: ClickHouse ReplacingMergeTree (real server)', function () {
  let sb: Sandbox;
  before(async function () {
    this.timeout(300_000);
    sb = await createSandbox('chrmt');
  });
  after(async () => sb?.cleanup());

  it('SELECT … FINAL returns only the highest version of a key inserted three times', async () => {
    const ch = createClickHouse(sb.config);
    const table = `${sb.config.clickhouse.database}.impression_counts`;
    const row = (version: number, impressions: number) => ({
      window_start: 1764150000, window_end: 1764150060, advertiser_id: 'adv-1', campaign_id: 'cmp-1', source_partition: 3,
      impressions, spend_micros: impressions * 1000, duplicates: 0, version, final: 0, revised: 0,
    });
    for (const [v, n] of [[1, 10], [3, 30], [2, 20]] as const) {
      await ch.insert({ table, values: [row(v, n)], format: 'JSONEachRow' });
    }
    const raw = await queryRows<{ c: string }>(ch, `SELECT count() AS c FROM ${table}`);
    assert.equal(Number(raw[0].c), 3, 'three separate inserts are three rows before merging');
    const final = await queryRows<{ version: string; impressions: string }>(ch, `SELECT version, impressions FROM ${table} FINAL`);
    assert.deepEqual(final.map((r) => [Number(r.version), Number(r.impressions)]), [[3, 30]]);
    await ch.close();
  });
});

describe('local stack: down and up keep the data', function () {
  // A second, private stack on other ports, so the shared one keeps serving the other tests.
  const dir = path.join(os.tmpdir(), `tally-stack-${crypto.randomBytes(4).toString('hex')}`);
  let config: TallyConfig;
  const log = () => undefined;
  before(async () => {
    // Ports free now, none of them a default or another stack's.
    const ports = new Set<number>();
    while (ports.size < 4) ports.add(await freePort());
    const [kafka, controller, http, tcp] = [...ports].map(String);
    config = loadConfig({
      ...process.env, KAFKA_BROKERS: undefined, CLICKHOUSE_URL: undefined, TALLY_STACK_DIR: dir,
      TALLY_KAFKA_PORT: kafka, TALLY_KAFKA_CONTROLLER_PORT: controller, TALLY_CLICKHOUSE_HTTP_PORT: http, TALLY_CLICKHOUSE_TCP_PORT: tcp,
      TALLY_PARTITIONS: '2',
    });
  });
  after(async function () {
    this.timeout(120_000);
    await stackDown(config, log);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('topic contents and ClickHouse rows survive `down` then `up`', async function () {
    this.timeout(300_000);
    await stackUp(config, log);
    assert.ok((await stackStatus(config)).kafka.up);
    await stackUp(config, log); // twice is harmless
    const p = new DeliveringProducer(config.kafka.brokers);
    await p.connect();
    await p.send(Array.from({ length: 100 }, (_, i) => ({ topic: config.topics.impressions, partition: i % 2, key: `k${i}`, value: Buffer.from(`v${i}`) })));
    await p.disconnect();
    let ch = createClickHouse(config);
    await ch.command({ query: 'CREATE TABLE IF NOT EXISTS default.survive (n UInt32) ENGINE = MergeTree ORDER BY n' });
    await ch.command({ query: 'INSERT INTO default.survive VALUES (1), (2), (3)' });
    await ch.close();

    await stackDown(config, log);
    const down = await stackStatus(config);
    assert.equal(down.kafka.up, false);
    assert.equal(down.clickhouse.up, false);

    await stackUp(config, log);
    assert.deepEqual(await ensureTopics(config), [], 'topics still exist');
    const values = await readAll(config.kafka.brokers, config.topics.impressions, 2, 'read_committed');
    assert.equal(values.length, 100);
    ch = createClickHouse(config);
    const rows = await queryRows<{ s: string }>(ch, 'SELECT sum(n) AS s FROM default.survive');
    assert.equal(Number(rows[0].s), 6);
    await ch.close();
  });
});
