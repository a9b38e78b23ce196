/**
 * Produces an event plan to the impressions topic with the idempotent, acks=all producer the
 * ingest uses, and returns the plan's ground truth once every record is acknowledged.
 */
import crypto from 'node:crypto';
import type { TallyConfig } from '../config/index.js';
import { TallyError } from '../errors/index.js';
import { DeliveringProducer, fetchMetadata, sleep, type OutgoingRecord } from '../kafka/index.js';
import { buildEventPlan, planContext, type EventPlan, type GeneratorOptions, type PlannedRecord } from './event-generator.js';
import type { GroundTruth } from './ground-truth.js';
import { awaitWatermark } from './watermark-gate.js';

export interface GenerateOptions extends Partial<GeneratorOptions> {
  /** Records per producer call (default 1000). */
  batch?: number;
  /** The run's start in epoch ms (default: now). Event times are planned from it. */
  now?: number;
  /** See ProduceOptions.lateTimeoutMs. */
  lateTimeoutMs?: number;
}

export interface GenerateProgress {
  /** late_wait: holding the late and too-late records until every partition's watermark makes them so. */
  phase: 'main' | 'tail' | 'late_wait' | 'done';
  /** Records acknowledged by the broker so far. */
  sent: number;
  total: number;
  /** Acknowledged records per second since the previous report. */
  ratePerSec: number;
  elapsedMs: number;
}

export type GenerateProgressFn = (p: GenerateProgress) => void;

export interface ProduceOptions {
  batch?: number;
  onProgress?: GenerateProgressFn;
  /** How often onProgress is called while sending (default 1000 ms); it is called once more at the end. */
  progressEveryMs?: number;
  /** Longest wait for the watermark that makes the late records late (default 120 s). */
  lateTimeoutMs?: number;
}

/** A random unsigned 32-bit seed (when none is given). */
export function randomSeed(): number {
  return crypto.randomBytes(4).readUInt32LE(0);
}

/** Builds the plan (random seed unless given) and produces it; resolves to its truth. */
export async function generate(config: TallyConfig, options: GenerateOptions = {}, onProgress?: GenerateProgressFn): Promise<GroundTruth> {
  const { batch, now, lateTimeoutMs, ...planOptions } = options;
  const plan = buildEventPlan({ ...planOptions, seed: planOptions.seed ?? randomSeed() }, planContext(config, now ?? Date.now()));
  await producePlan(config, plan, { batch, onProgress, lateTimeoutMs });
  return plan.truth;
}

const MAX_IN_FLIGHT_BATCHES = 8;

/**
 * Produces every record of the plan, in order: the main part (paced at the records' dueMs in rate
 * mode), then, once all of it is acknowledged, the tail, whose late and too-late records wait until
 * every partition's watermark makes them so (an aggregator must be running for that). Rejects on
 * the first failed delivery (the truth is then not reached: the run must be repeated on fresh
 * topics or a new prefix).
 */
export async function producePlan(config: TallyConfig, plan: EventPlan, opts: ProduceOptions = {}): Promise<void> {
  const batchSize = Math.max(1, opts.batch ?? 1000);
  const topic = config.topics.impressions;
  await checkPartitions(config, topic, plan.context.partitions);

  const producer = new DeliveringProducer(config.kafka.brokers, { 'client.id': 'tally-generate' });
  await producer.connect();
  const started = Date.now();
  const total = plan.records.length;
  let sent = 0;
  let phase: GenerateProgress['phase'] = 'main';
  let lastReport = { at: started, sent: 0 };
  const report = () => {
    const at = Date.now();
    // While sending: the rate since the previous report; at the end: the run's average.
    const from = phase === 'done' ? { at: started, sent: 0 } : lastReport;
    const ratePerSec = at > from.at ? ((sent - from.sent) * 1000) / (at - from.at) : 0;
    lastReport = { at, sent };
    opts.onProgress?.({ phase, sent, total, ratePerSec: Math.round(ratePerSec), elapsedMs: at - started });
  };
  const timer = opts.onProgress ? setInterval(report, opts.progressEveryMs ?? 1000) : undefined;
  timer?.unref();

  let failure: unknown;
  const inFlight: Promise<void>[] = [];
  const toOutgoing = (r: PlannedRecord): OutgoingRecord => ({ topic, partition: r.partition, key: r.key, value: Buffer.from(r.value) });
  const send = async (records: PlannedRecord[]) => {
    const n = records.length;
    inFlight.push(producer.send(records.map(toOutgoing)).then(() => { sent += n; }, (err: unknown) => { failure ??= err; }));
    while (inFlight.length >= MAX_IN_FLIGHT_BATCHES) await inFlight.shift();
    if (failure !== undefined) throw failure;
  };
  const drain = async () => {
    while (inFlight.length > 0) await inFlight.shift();
    if (failure !== undefined) throw failure;
  };

  try {
    let i = 0;
    while (i < plan.mainCount) {
      if (plan.paced) {
        const elapsed = Date.now() - started;
        const due = plan.records[i].dueMs;
        if (due > elapsed) {
          await sleep(Math.min(due - elapsed, 50));
          continue;
        }
      }
      let end = i;
      const elapsed = Date.now() - started;
      while (end < plan.mainCount && end - i < batchSize && (!plan.paced || plan.records[end].dueMs <= elapsed)) end++;
      await send(plan.records.slice(i, end));
      i = end;
    }
    await drain();
    // The tail's event times are the run's end: never send it before the end (clock guard).
    const wait = plan.durationMs - (Date.now() - started);
    if (wait > 0) await sleep(wait);
    phase = 'tail';
    for (let j = plan.mainCount; j < plan.lateFrom; j += batchSize) {
      await send(plan.records.slice(j, Math.min(plan.lateFrom, j + batchSize)));
    }
    await drain();
    if (plan.lateWatermark !== null) {
      phase = 'late_wait';
      await awaitWatermark(config, plan.lateWatermark, { timeoutMs: opts.lateTimeoutMs });
      phase = 'tail';
      for (let j = plan.lateFrom; j < total; j += batchSize) await send(plan.records.slice(j, Math.min(total, j + batchSize)));
      await drain();
    }
    phase = 'done';
  } finally {
    if (timer) clearInterval(timer);
    await Promise.allSettled(inFlight);
    await producer.disconnect();
  }
  report();
}

/** The plan's home and foreign partitions are only right if the topic has the configured partition count. */
async function checkPartitions(config: TallyConfig, topic: string, partitions: number): Promise<void> {
  const md = await fetchMetadata(config.kafka.brokers, 10_000);
  const t = md.topics.find((x) => x.name === topic);
  if (!t) throw new TallyError(`topic ${topic} does not exist (run \`tally stack up\` or create it with ${partitions} partitions)`);
  if (t.partitions.length !== partitions) {
    throw new TallyError(`topic ${topic} has ${t.partitions.length} partitions but TALLY_PARTITIONS is ${partitions}`);
  }
}
