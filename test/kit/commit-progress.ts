/**
 * When the aggregators counted, as Kafka shows it: their group's committed offsets of the input
 * topic and its ends, sampled in the background. An offset moves only when a transaction that
 * counted records of that partition committed, so "counting again after a failure" is the first
 * committed offset past the partition's end at the failure (a record produced after it counted), and a pause is the longest time one partition's offset stood still while records
 * were waiting behind it.
 */
import crypto from 'node:crypto';
import type { TallyConfig } from '../../server/src/config/index.js';
import { Consumer, retry } from '../../server/src/kafka/index.js';
import { sleep } from './waiting.js';

/** One sample of a partition: its committed offset and its end (high watermark), and when they were seen. */
interface Sample {
  at: number;
  committed: number;
  high: number;
}

export interface Stall {
  partition: number;
  ms: number;
}

export class CommitProgress {
  /** read_uncommitted: the offsets committed so far without waiting for open transactions, and the high watermarks. */
  private consumer: Consumer;
  private readonly samples: Sample[][];
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly config: TallyConfig, private readonly everyMs = 100) {
    this.consumer = this.newConsumer();
    this.samples = Array.from({ length: config.partitions }, () => []);
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    this.running = this.sample();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    await this.consumer.disconnect();
  }

  /** The committed offsets as last sampled (-1: none yet). */
  offsets(): number[] {
    return this.samples.map((s) => s.at(-1)?.committed ?? -1);
  }

  /** Every partition's end now: committed offsets past them count records produced after this call. */
  async ends(): Promise<number[]> {
    const { impressions } = this.config.topics;
    // The sampler may replace its client meanwhile: a query of the one it dropped is asked again.
    return retry(() => Promise.all(this.samples.map(async (_, p) => (await this.consumer.queryWatermarkOffsets(impressions, p, 5_000)).highOffset)), {
      what: 'partition ends', attempts: 5, delayMs: 200,
    });
  }

  /** When every one of `partitions` had a committed offset past its offset in `before` (first seen), or undefined while one has not. */
  movedPast(before: readonly number[], partitions: readonly number[]): number | undefined {
    let latest = 0;
    for (const p of partitions) {
      const moved = this.samples[p].find((s) => s.committed > before[p]);
      if (moved === undefined) return undefined;
      latest = Math.max(latest, moved.at);
    }
    return latest;
  }

  /**
   * The longest time within [from, to] that one of `partitions` had records waiting (its end past
   * its committed offset) while its committed offset did not move, and which partition.
   */
  longestStall(from: number, to: number, partitions: readonly number[]): Stall {
    let worst: Stall = { partition: -1, ms: 0 };
    const note = (partition: number, ms: number) => {
      if (ms > worst.ms) worst = { partition, ms };
    };
    for (const p of partitions) {
      let waitingSince: number | undefined;
      let committed = -1;
      for (const s of this.samples[p]) {
        if (s.at < from) {
          committed = s.committed;
          continue;
        }
        if (s.at > to) break;
        if (s.committed > committed && waitingSince !== undefined) {
          note(p, s.at - waitingSince);
          waitingSince = undefined;
        }
        committed = s.committed;
        if (s.high > s.committed) waitingSince ??= s.at;
        else waitingSince = undefined;
      }
      if (waitingSince !== undefined) note(p, to - waitingSince);
    }
    return worst;
  }

  /** In the aggregators' group without ever joining it: committed() only asks the coordinator. */
  private newConsumer(): Consumer {
    return new Consumer({ brokers: this.config.kafka.brokers, groupId: this.config.groups.aggregator, clientId: `commit-progress-${crypto.randomUUID()}`, isolation: 'read_uncommitted' });
  }

  private async sample(): Promise<void> {
    const { impressions } = this.config.topics;
    const request = Array.from({ length: this.config.partitions }, (_, partition) => ({ topic: impressions, partition }));
    let failures = 0;
    while (!this.stopping) {
      // Two failed samples in a row: a new client, so that no coordinator librdkafka keeps cached
      // after its broker died delays the samples beyond the failover itself.
      if (failures >= 2) {
        failures = 0;
        void this.consumer.disconnect();
        this.consumer = this.newConsumer();
        await this.consumer.connect().catch(() => undefined);
      }
      // A failed query (a leader or the coordinator moving) is no sample; an end unknown this time is the last one seen.
      const [committed, highs] = await Promise.all([
        this.consumer.committed(request, 1_000).catch(() => {
          failures++;
          return [];
        }),
        Promise.all(request.map((tp) => this.consumer.queryWatermarkOffsets(impressions, tp.partition, 2_000).then((w) => w.highOffset, () => undefined))),
      ]);
      const at = Date.now();
      if (committed.length > 0) failures = 0;
      for (const tp of committed) {
        const last = this.samples[tp.partition].at(-1);
        // librdkafka leaves the offset out (or negative) while the group has committed none.
        const offset = typeof tp.offset === 'number' && tp.offset >= 0 ? tp.offset : -1;
        this.samples[tp.partition].push({ at, committed: Math.max(offset, last?.committed ?? -1), high: highs[tp.partition] ?? last?.high ?? 0 });
      }
      await sleep(this.everyMs); // pacing the samples
    }
  }
}
