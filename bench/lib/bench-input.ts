import type { TallyConfig } from '../../server/src/config/index.js';
import { generate } from '../../server/src/tools/index.js';
import { createSandbox, type Sandbox } from '../../test/kit/sandbox.js';

/** The preloaded `impressions` topic every contender reads in one bench run. */
export interface BenchInput {
  brokers: string;
  topic: string;
  partitions: number;
  windowMs: number;
  /** Records on the topic (unique events plus duplicates). */
  records: number;
  unique: number;
  duplicates: number;
  config: TallyConfig;
  sandbox: Sandbox;
}

/**
 * Generates `events` unique impressions plus 5 % duplicates (re-sent copies, some after a delay)
 * over ten minutes of event time, keyed by id on their home partition as tally's ingest writes them.
 */
export async function preloadInput(events: number, log: (m: string) => void): Promise<BenchInput> {
  const sandbox = await createSandbox('benchinput', {});
  const { config } = sandbox;
  log(`preloading ${config.topics.impressions}: ${events.toLocaleString('en')} events + 5 % duplicates, ${config.partitions} partitions…`);
  const t0 = Date.now();
  const truth = await generate(config, { seed: 20261127, count: events, idPrefix: 'bench-', duplicates: 0.05, bad: 0, tooLate: 0, lateWithinHorizon: 0, keyMode: 'home', spanMs: 10 * 60_000 });
  log(`  ${truth.counts.sent.toLocaleString('en')} records in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return {
    brokers: config.kafka.brokers,
    topic: config.topics.impressions,
    partitions: config.partitions,
    windowMs: config.windowMs,
    records: truth.counts.sent,
    unique: truth.counts.unique,
    duplicates: truth.counts.duplicatesSent,
    config,
    sandbox,
  };
}
