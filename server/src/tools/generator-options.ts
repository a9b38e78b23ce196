/**
 * What a generate run is asked for (GeneratorOptions, checked and defaulted by
 * resolveGeneratorOptions) and the pipeline settings its plan depends on (PlanContext).
 */
import { InvalidArgumentError } from '../errors/index.js';
import { MAX_EVENT_BYTES } from '../impression/index.js';
import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../contracts/dead-letter-reasons.js';
import type { TallyConfig } from '../config/index.js';

/** How a record is keyed and partitioned. */
export type KeyMode = 'home' | 'foreign' | 'nokey';
export type KeyModeOption = KeyMode | 'mixed';
export const KEY_MODE_OPTIONS: readonly KeyModeOption[] = ['home', 'foreign', 'nokey', 'mixed'];

/** The malformed kinds --bad cycles through: every dead-letter reason except too_late. */
export type BadKind = Exclude<DeadLetterReason, 'too_late'>;
export const BAD_KINDS: readonly BadKind[] = DEAD_LETTER_REASONS.filter((r): r is BadKind => r !== 'too_late');

/** Size of the too_large records: beyond the contract's maximum event size. */
export const TOO_LARGE_BYTES = MAX_EVENT_BYTES + 4096;

export interface GeneratorOptions {
  /** Original (unique, valid) impressions of the main part. Ignored when rate is set. */
  count: number;
  /** Paced mode: original impressions per second, for durationS seconds (count = rate × durationS). */
  rate: number | null;
  durationS: number | null;
  advertisers: number;
  /** Campaigns per advertiser. */
  campaigns: number;
  /** Prefix of every advertiser, campaign and impression id (tests use a fresh one). */
  idPrefix: string;
  /** Extra copies sent, as a ratio of the original impressions (0.1: one copy per ten). */
  duplicates: number;
  /** Share of the duplicates retried at the very end of the run instead of soon after. */
  lateRetryRatio: number;
  /** Event times are up to this much earlier than their place in the sequence (out of order). */
  jitterMs: number;
  /** Count mode: event times spread over this span ending at now. null: 5 min (less if the dedup horizon is short). */
  spanMs: number | null;
  /** Impressions 10–30 min old sent at the end: counted, their (closed) windows revised. */
  lateWithinHorizon: number;
  /** Impressions ~3 h old sent at the end: dead-lettered as too_late, not counted. */
  tooLate: number;
  /** Malformed records, cycling through BAD_KINDS. */
  bad: number;
  keyMode: KeyModeOption;
  /** Unsigned 32-bit seed. */
  seed: number;
}

export const DEFAULT_GENERATOR_OPTIONS: Readonly<Omit<GeneratorOptions, 'seed'>> = {
  count: 10_000,
  rate: null,
  durationS: null,
  advertisers: 3,
  campaigns: 4,
  idPrefix: '',
  duplicates: 0.1,
  lateRetryRatio: 0.3,
  jitterMs: 2_000,
  spanMs: null,
  lateWithinHorizon: 20,
  tooLate: 5,
  bad: 9,
  keyMode: 'mixed',
};

/** The pipeline settings the plan depends on (from TallyConfig) and the plan's clock (epoch ms the run starts at). */
export type PlanContext = Pick<TallyConfig, 'partitions' | 'windowMs' | 'outOfOrdernessMs' | 'allowedLatenessMs' | 'dedupHorizonMs' | 'maxClockSkewMs'> & { now: number };

export function planContext(config: TallyConfig, now: number): PlanContext {
  return {
    partitions: config.partitions,
    windowMs: config.windowMs,
    outOfOrdernessMs: config.outOfOrdernessMs,
    allowedLatenessMs: config.allowedLatenessMs,
    dedupHorizonMs: config.dedupHorizonMs,
    maxClockSkewMs: config.maxClockSkewMs,
    now,
  };
}

const ID_PREFIX = /^[A-Za-z0-9._:-]{0,64}$/;

/** Checks the options (throws InvalidArgumentError naming the option) and fills in the defaults. */
export function resolveGeneratorOptions(partial: Partial<GeneratorOptions> & { seed: number }): GeneratorOptions {
  const o: GeneratorOptions = { ...DEFAULT_GENERATOR_OPTIONS, ...partial };
  const fail = (name: string, why: string): never => {
    throw new InvalidArgumentError(`${name}: ${why}`);
  };
  const int = (name: string, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min) fail(name, `must be an integer ≥ ${min} (got ${v})`);
  };
  const num = (name: string, v: number, min: number, max: number) => {
    if (!Number.isFinite(v) || v < min || v > max) fail(name, `must be between ${min} and ${max} (got ${v})`);
  };
  if (o.rate !== null) {
    num('rate', o.rate, 0.001, 10_000_000);
    if (o.durationS === null) fail('duration', 'is required with rate');
    num('duration', o.durationS as number, 0.001, 30 * 86_400);
    o.count = Math.round(o.rate * (o.durationS as number));
  } else if (o.durationS !== null) {
    fail('duration', 'only goes with rate');
  }
  int('count', o.count, 0);
  int('advertisers', o.advertisers, 1);
  int('campaigns', o.campaigns, 1);
  if (!ID_PREFIX.test(o.idPrefix)) fail('id-prefix', 'at most 64 characters of A-Z a-z 0-9 . _ : -');
  num('duplicates', o.duplicates, 0, 10);
  num('late-retry-ratio', o.lateRetryRatio, 0, 1);
  int('jitter-ms', o.jitterMs, 0);
  if (o.spanMs !== null) int('span-ms', o.spanMs, 1);
  int('late-within-horizon', o.lateWithinHorizon, 0);
  int('too-late', o.tooLate, 0);
  int('bad', o.bad, 0);
  if (!KEY_MODE_OPTIONS.includes(o.keyMode)) fail('key-mode', `one of ${KEY_MODE_OPTIONS.join(', ')}`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) fail('seed', 'an unsigned 32-bit integer');
  return o;
}
