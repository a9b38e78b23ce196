/**
 * Memory of a tally aggregator holding N dedup ids, for N too large to feed through Kafka in a
 * bench (10M): the bench writes N id hashes straight into the dedup changelog, as the aggregator's
 * own transactions would have (16 bytes an id, chunks of 20,000, spread over partitions and the
 * last ten windows), starts a real aggregator on an empty input and reads what its restore took
 * and what the process holds afterwards.
 */
import crypto from 'node:crypto';
import Kafka from 'node-rdkafka';
import { chunkKey } from '../../server/src/aggregator/changelog.js';
import { windowStartOf } from '../../server/src/aggregator/core/index.js';
import { kafkaError } from '../../server/src/errors/index.js';
import { RoleProcess } from '../../test/kit/role-process.js';
import { createSandbox } from '../../test/kit/sandbox.js';
import { sleep, waitUntil } from '../../test/kit/waiting.js';
import { readMetrics, waitForRestore } from './tally.js';

const IDS_PER_CHUNK = 20_000;
const WINDOWS = 10;

export interface HeldIdsResult { ids: number; restoreMs: number; rssMiB: number; bytesPerId: number }

async function writeChangelog(brokers: string, topic: string, partitions: number, windowMs: number, ids: number): Promise<void> {
  const producer = new Kafka.Producer({ 'metadata.broker.list': brokers, 'linger.ms': 20, 'queue.buffering.max.kbytes': 1_048_576, 'message.max.bytes': 4_000_000, log_level: 0 }, { 'request.required.acks': -1 });
  await new Promise<void>((resolve, reject) => producer.connect({ timeout: 10_000 }, (err) => (err ? reject(kafkaError('connect', err)) : resolve())));
  producer.setPollInterval(50);
  const newest = windowStartOf(Date.now(), windowMs);
  const nextChunk = new Map<string, number>();
  try {
    for (let written = 0, n = 0; written < ids; n++) {
      const count = Math.min(IDS_PER_CHUNK, ids - written);
      const partition = n % partitions;
      const windowStart = newest - (Math.floor(n / partitions) % WINDOWS) * windowMs;
      const slot = `${partition}:${windowStart}`;
      const chunk = nextChunk.get(slot) ?? 0;
      nextChunk.set(slot, chunk + 1);
      const value = crypto.randomBytes(count * 16);
      // Word 0 = 0 marks an empty slot in a DedupSet; a real hash never has it (see id-hash.ts).
      for (let i = 0; i < count; i++) if (value.readUInt32LE(i * 16) === 0) value[i * 16] = 1;
      for (;;) {
        try {
          producer.produce(topic, partition, value, Buffer.from(chunkKey(windowStart, chunk)));
          break;
        } catch {
          await sleep(20); // pacing: librdkafka's local queue is full until its deliveries catch up
        }
      }
      written += count;
    }
    await new Promise<void>((resolve, reject) => producer.flush(60_000, (err) => (err ? reject(kafkaError('flush', err)) : resolve())));
  } finally {
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
}

export async function measureHeldIds(ids: number, log: (m: string) => void): Promise<HeldIdsResult> {
  const sb = await createSandbox('benchids', { TALLY_INSTANCE_ID: 'bench-ids', LOG_LEVEL: 'info' });
  let agg: RoleProcess | undefined;
  try {
    log(`writing ${ids.toLocaleString('en')} id hashes into ${sb.config.topics.changelog}…`);
    await writeChangelog(sb.config.kafka.brokers, sb.config.topics.changelog, sb.config.partitions, sb.config.windowMs, ids);
    const aggregator = new RoleProcess('aggregator', sb.env);
    agg = aggregator;
    const restored = await waitForRestore(aggregator, 300_000);
    // The aggregator refreshes its gauges once a second: wait for the first refresh after the restore.
    const names = ['tally_aggregator_dedup_ids', 'tally_aggregator_dedup_bytes', 'tally_aggregator_process_resident_memory_bytes'];
    let m: Record<string, number> = {};
    await waitUntil(`the dedup gauge to show ${ids} ids`, async () => {
      m = await readMetrics(aggregator, names);
      return m.tally_aggregator_dedup_ids === ids;
    }, { timeoutMs: 5_000, everyMs: 200 }).catch(() => undefined);
    if (m.tally_aggregator_dedup_ids !== ids) throw new Error(`the aggregator holds ${m.tally_aggregator_dedup_ids} ids, ${ids} written`);
    return {
      ids,
      restoreMs: restored.ms,
      rssMiB: m.tally_aggregator_process_resident_memory_bytes / 2 ** 20,
      bytesPerId: m.tally_aggregator_dedup_bytes / ids,
    };
  } finally {
    await agg?.stop();
    await sb.cleanup();
  }
}
