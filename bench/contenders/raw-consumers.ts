/**
 * The two ceilings: kcat (librdkafka in C, output discarded) and node-rdkafka consuming in Node
 * with tally's consumer settings and doing nothing with the records. Neither parses, dedups or
 * commits; they say how fast records can come out of this broker at all, and into Node.
 */
import { spawnSync } from 'node:child_process';
import Kafka from 'node-rdkafka';
import { kafkaError } from '../../server/src/errors/index.js';
import type { BenchInput } from '../lib/bench-input.js';
import type { ContenderResult } from '../lib/contender-result.js';

export function runKcat(input: BenchInput): ContenderResult {
  const t0 = process.hrtime.bigint();
  const kcat = spawnSync('kcat', ['-C', '-b', input.brokers, '-t', input.topic, '-o', 'beginning', '-e', '-q', '-X', 'isolation.level=read_committed', '-f', '%o\n'], {
    stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const records = kcat.stdout.toString().split('\n').filter(Boolean).length;
  if (kcat.status !== 0 || records !== input.records) throw new Error(`kcat read ${records} of ${input.records} records (exit ${kcat.status})`);
  return { seconds, eventsPerSec: records / seconds, counted: records, duplicates: 0, note: 'kcat -C -e, read_committed, output %o only' };
}

/** Consumes the topic to its end with the aggregator's consumer settings; counts records, nothing else. */
export async function runNodeConsume(input: BenchInput): Promise<ContenderResult> {
  const consumer = new Kafka.KafkaConsumer({
    'metadata.broker.list': input.brokers,
    'group.id': `bench-node-consume-${process.pid}-${Date.now()}`,
    'enable.auto.commit': false,
    'enable.partition.eof': true,
    'isolation.level': 'read_committed',
    'fetch.wait.max.ms': 50,
    'queued.max.messages.kbytes': 65_536,
    log_level: 0,
  }, { 'auto.offset.reset': 'earliest' });
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
  try {
    consumer.setDefaultConsumeTimeout(20);
    consumer.assign(Array.from({ length: input.partitions }, (_, partition) => ({ topic: input.topic, partition, offset: 0 })));
    let records = 0;
    const deadline = Date.now() + 300_000;
    while (records < input.records) {
      if (Date.now() > deadline) throw new Error(`node-rdkafka read ${records} of ${input.records} records in 5 min`);
      const batch = await new Promise<Kafka.Message[]>((resolve, reject) => consumer.consume(5_000, (err, msgs) => (err ? reject(kafkaError('consume', err)) : resolve(msgs))));
      records += batch.length;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { seconds, eventsPerSec: records / seconds, counted: records, duplicates: 0, note: 'node-rdkafka consume(5000), read_committed, records discarded' };
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}
