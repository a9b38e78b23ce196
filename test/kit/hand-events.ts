/**
 * Hand-made impressions for the event-time tests: events with chosen timestamps, produced through
 * tally's producer (murmur2 home keys, explicit foreign partitions, no keys) or through kcat
 * (librdkafka's default partitioner), and the ground truth they must give.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { TallyConfig } from '../../server/src/config/index.js';
import { homePartition } from '../../server/src/impression/index.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import { ensureDebianPackage } from '../../server/src/stack/index.js';
import { dimensionValuesOf, emptyDeadLetters, truthRowsOf, type GroundTruth } from '../../server/src/tools/index.js';

export interface HandEvent {
  impression_id: string;
  ts: number;
  advertiser_id: string;
  campaign_id: string;
  cost_micros: number;
  /** Breakdown values: any JSON value (absent or not a usable string: `unknown`). */
  country?: unknown;
  device?: unknown;
}

/**
 * `n` distinct impressions with timestamps evenly spread over [from, to], 2 advertisers × 2
 * campaigns, three countries and two devices (every fifth without one: `unknown`).
 */
export function spreadEvents(prefix: string, n: number, from: number, to: number): HandEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const adv = `${prefix}adv-${1 + (i % 2)}`;
    return {
      impression_id: `${prefix}${i}`,
      ts: n === 1 ? from : from + Math.floor(((to - from) * i) / (n - 1)),
      advertiser_id: adv,
      campaign_id: `${adv}-cmp-${1 + (Math.floor(i / 2) % 2)}`,
      cost_micros: 100 + ((i * 7919) % 4900),
      country: ['DE', 'FR', 'US'][i % 3],
      ...(i % 5 === 0 ? {} : { device: i % 2 === 0 ? 'mobile' : 'desktop' }),
    };
  });
}

/** What the pipeline must show for `events` (distinct ids counted once) plus `copies` duplicates of them. */
export function truthOf(config: TallyConfig, prefix: string, events: HandEvent[], copies = 0, tooLate = 0): GroundTruth {
  const counted = events.map((e) => ({
    ts: e.ts, advertiserId: e.advertiser_id, campaignId: e.campaign_id, costMicros: e.cost_micros, dimensionValues: dimensionValuesOf(e),
  }));
  const deadLetters = emptyDeadLetters();
  deadLetters.too_late = tooLate;
  const generatedAt = new Date().toISOString();
  return {
    windowMs: config.windowMs,
    idPrefix: prefix,
    generatedAt,
    counts: { sent: events.length + copies + tooLate, valid: events.length + copies + tooLate, unique: events.length, duplicatesSent: copies, lateWithinHorizon: 0 },
    deadLetters,
    rows: truthRowsOf(counted, config.windowMs),
    phases: [{ idPrefix: prefix, seed: 0, generatedAt }],
  };
}

export type Route = 'home' | 'foreign' | 'nokey';

/** Produces with tally's idempotent producer, routing record i by `route(i)`; resolves on the acks. */
export async function produceEvents(config: TallyConfig, events: HandEvent[], route: (i: number) => Route = () => 'home'): Promise<void> {
  const producer = new DeliveringProducer(config.kafka.brokers, { 'client.id': 'event-time-test' });
  await producer.connect();
  try {
    const records = events.map((e, i) => {
      const r = route(i);
      const home = homePartition(e.impression_id, config.partitions);
      return {
        topic: config.topics.impressions,
        partition: r === 'home' ? null : r === 'foreign' ? (home + 1 + (i % (config.partitions - 1))) % config.partitions : i % config.partitions,
        key: r === 'nokey' ? null : e.impression_id,
        value: Buffer.from(JSON.stringify(e)),
      };
    });
    for (let i = 0; i < records.length; i += 1000) await producer.send(records.slice(i, i + 1000));
  } finally {
    await producer.disconnect();
  }
}

/** Produces through kcat (librdkafka's default partitioner, not murmur2): keyed by id, or without a key. */
export function produceWithKcat(config: TallyConfig, events: HandEvent[], keyed: boolean): void {
  ensureDebianPackage('kcat', 'kcat', () => undefined);
  const input = events.map((e) => (keyed ? `${e.impression_id}\t${JSON.stringify(e)}` : JSON.stringify(e))).join('\n');
  const r = spawnSync('kcat', ['-P', '-b', config.kafka.brokers, '-t', config.topics.impressions, ...(keyed ? ['-K', '\t'] : [])], { input: `${input}\n`, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/** Distinct ids whose home partition is `partition`. */
export function idsWithHome(prefix: string, n: number, partition: number, partitions: number): string[] {
  const out: string[] = [];
  for (let k = 0; out.length < n; k++) if (homePartition(`${prefix}${k}`, partitions) === partition) out.push(`${prefix}${k}`);
  return out;
}
