import Kafka from 'node-rdkafka';
import { loadConfig } from './server/src/config/index.js';
import { ensureTopics, deleteTopics, DeliveringProducer } from './server/src/kafka/index.js';
import { encodeWindowRow } from './server/src/aggregator/count-record.js';
import { RowBatch } from './server/src/sink/row-batch.js';
const config = loadConfig({ ...process.env, TALLY_TOPIC_PREFIX: `prof-${Date.now()}.` });
await ensureTopics(config);
const p = new DeliveringProducer(config.kafka.brokers); await p.connect();
const N = 100_000;
const recs = Array.from({ length: N }, (_, i) => ({ topic: config.topics.counts, partition: i % 8, key: `k${i}`, value: encodeWindowRow({ windowStart: 1767225600000, windowEnd: 1767225660000, advertiserId: 'adv-1', campaignId: `cmp-${i}`, sourcePartition: i % 8, impressions: i, spendMicros: i * 10, duplicates: 0, version: 1, final: false, revised: false }) }));
for (let i = 0; i < N; i += 10000) await p.send(recs.slice(i, i + 10000));
await p.disconnect();
for (const withBatch of [false, true]) {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': config.kafka.brokers, 'group.id': `prof-${Math.random()}`, 'enable.auto.commit': false, 'isolation.level': 'read_committed', 'enable.partition.eof': true, 'fetch.wait.max.ms': 50, 'queued.max.messages.kbytes': 65536, log_level: 3 }, { 'auto.offset.reset': 'earliest' });
  await new Promise<void>((res, rej) => c.connect({ timeout: 10000 }, (e) => (e ? rej(e) : res())));
  c.assign(Array.from({ length: 8 }, (_, partition) => ({ topic: config.topics.counts, partition, offset: 0 })));
  c.setDefaultConsumeTimeout(100);
  let got = 0; let t0 = 0; const b = new RowBatch();
  while (got < N) {
    const msgs = await new Promise<Kafka.Message[]>((res, rej) => c.consume(5000, (e, m) => (e ? rej(e) : res(m))));
    if (msgs.length && !t0) t0 = Date.now();
    if (withBatch) for (const m of msgs) b.add(m.partition, m.offset, m.value);
    got += msgs.length;
  }
  console.log(withBatch ? 'consume+RowBatch' : 'consume only', got, 'in', Date.now() - t0, 'ms', Math.round(got / ((Date.now() - t0) / 1000)), '/s');
  await new Promise<void>((r) => c.disconnect(() => r()));
}
await deleteTopics(config.kafka.brokers, Object.values(config.topics));
