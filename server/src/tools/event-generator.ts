/**
 * The event plan of a generate run, built from a seed: every record to produce (key, partition,
 * value, when) and the ground truth the pipeline must reach. Pure: no I/O, no clock (the caller
 * passes `now`), no Math.random; the same options, context and seed give the same plan.
 *
 * Shape of a run:
 *   main part (paced in rate mode): the original impressions in event-time order (with jitter),
 *     "soon" duplicates within the next few hundred records, malformed records spread through it;
 *   tail (sent at the very end, as fast as possible): duplicates retried much later, then, once
 *     every partition's watermark makes them late, impressions 10–30 min old (late but within the
 *     dedup horizon: counted, windows revised) and ~3 h old ones (too late: dead letters).
 *
 * Why the late part of the tail waits (EventPlan.lateWatermark): an event is late (or too late)
 * only once its home partition's watermark, the minimum over every source partition's progress,
 * has passed its window's close (or dedup horizon). Until every partition has reported the main
 * part's event times, a 3-hour-old event is still counted in an open window, correctly. So
 * producePlan sends the late and too-late impressions only after every partition's published
 * watermark passed both marks: the too-late ones are then dead letters and the late ones revise
 * closed windows, whatever the key mode.
 */
import { InvalidArgumentError } from '../errors/index.js';
import { homePartition, MAX_EVENT_BYTES } from '../impression/index.js';
import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../contracts/dead-letter-reasons.js';
import type { TallyConfig } from '../config/index.js';
import { compareTruthRows, emptyDeadLetters, truthRowKey, type GroundTruth, type TruthRow } from './ground-truth.js';

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

/** The pipeline settings the plan depends on (from TallyConfig) and the plan's clock. */
export interface PlanContext {
  partitions: number;
  windowMs: number;
  outOfOrdernessMs: number;
  allowedLatenessMs: number;
  dedupHorizonMs: number;
  maxClockSkewMs: number;
  /** Epoch ms the run starts at. */
  now: number;
}

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

export type RecordKind = 'original' | 'duplicate' | 'late_retry' | 'late_within_horizon' | 'too_late' | 'bad';

export interface PlannedRecord {
  /** Kafka key: the impression id, or null (nokey mode). */
  key: string | null;
  /** null: the producer's partitioner picks (murmur2 of the key = the home partition). */
  partition: number | null;
  /** Kafka value (UTF-8). */
  value: string;
  keyMode: KeyMode;
  kind: RecordKind;
  /** The dead-letter reason the pipeline must give it; null for counted records. */
  reason: DeadLetterReason | null;
  /** Paced mode: ms after the run start when it is due. 0 in count mode and in the tail. */
  dueMs: number;
}

export interface EventPlan {
  options: GeneratorOptions;
  context: PlanContext;
  /** Main part first (records[0, mainCount)), then the tail. */
  records: PlannedRecord[];
  mainCount: number;
  /** true in rate mode: main records are sent at their dueMs. */
  paced: boolean;
  /** Rate mode: the tail is not sent before this many ms after the start (its event times are the run's end). 0 in count mode. */
  durationMs: number;
  /** The late-within-horizon and too-late records are records[lateFrom, …), the end of the tail. */
  lateFrom: number;
  /** They are late (and too late) once every partition's watermark is at or past this (null: there are none). */
  lateWatermark: number | null;
  truth: GroundTruth;
}

const ID_PREFIX = /^[A-Za-z0-9._:-]{0,64}$/;
const COUNTRIES = ['DE', 'FR', 'US', 'GB', 'JP', 'BR', 'IN', 'ES'];
const DEVICES = ['mobile', 'desktop', 'tablet', 'ctv'];
const SOON_DUPLICATE_WITHIN = 300;
const MIN = 60_000;

/** mulberry32: a small, fast, seedable PRNG (uniform [0, 1)). */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

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

interface Impression {
  id: string;
  ts: number;
  advertiserId: string;
  campaignId: string;
  costMicros: number;
  value: string;
}

/**
 * Builds the plan. Throws InvalidArgumentError when the options cannot give an exact truth with
 * these pipeline settings (e.g. a span so long that re-sent events would fall beyond the dedup
 * horizon).
 */
export function buildEventPlan(partial: Partial<GeneratorOptions> & { seed: number }, ctx: PlanContext): EventPlan {
  const o = resolveGeneratorOptions(partial);
  const rng = createRng(o.seed);
  const int = (n: number) => Math.floor(rng() * n);
  const between = (lo: number, hi: number) => lo + int(hi - lo + 1);
  const { partitions, windowMs } = ctx;
  const paced = o.rate !== null;
  const durationMs = paced ? Math.round((o.durationS as number) * 1000) : 0;

  // Ages that keep the truth exact: anything re-sent or forwarded must stay well inside
  // allowed lateness + dedup horizon of the watermark; too-late must be well beyond it.
  const budget = ctx.allowedLatenessMs + ctx.dedupHorizonMs;
  const safeAge = Math.floor(budget / 2);
  if (o.jitterMs >= safeAge) {
    throw new InvalidArgumentError(`jitter-ms: ${o.jitterMs} ms must be below half of allowed lateness + dedup horizon (${safeAge} ms)`);
  }
  const spanMs = paced ? durationMs : (o.spanMs ?? Math.max(1, Math.min(5 * MIN, safeAge - o.jitterMs)));
  if (!paced && spanMs + o.jitterMs > safeAge) {
    throw new InvalidArgumentError(`span-ms: ${spanMs} ms + jitter must be below half of allowed lateness + dedup horizon (${safeAge} ms), or re-sent events could be too late`);
  }
  const endTs = ctx.now + durationMs;
  const lateMaxAge = Math.min(30 * MIN, safeAge);
  const lateMinAge = Math.min(10 * MIN, Math.floor(lateMaxAge / 3));
  const tooLateAge = Math.max(3 * 60 * MIN,
    windowMs + ctx.allowedLatenessMs + ctx.dedupHorizonMs + ctx.outOfOrdernessMs + o.jitterMs + 10 * MIN);
  const futureAhead = Math.max(86_400_000, ctx.maxClockSkewMs + 86_400_000);

  const tag = o.seed.toString(36);
  const advertiserIds = Array.from({ length: o.advertisers }, (_, a) => `${o.idPrefix}adv-${a + 1}`);

  const pickMode = (): KeyMode => {
    if (o.keyMode !== 'mixed') return o.keyMode;
    return (['home', 'foreign', 'nokey'] as const)[int(3)];
  };
  const route = (id: string | null, mode: KeyMode): Pick<PlannedRecord, 'key' | 'partition' | 'keyMode'> => {
    if (mode === 'home' && id !== null) return { key: id, partition: null, keyMode: 'home' };
    if (mode === 'foreign' && id !== null) {
      // Another partitioner: any partition but the home one (when there is another).
      if (partitions === 1) return { key: id, partition: 0, keyMode: 'foreign' };
      const home = homePartition(id, partitions);
      let p = int(partitions - 1);
      if (p >= home) p++;
      return { key: id, partition: p, keyMode: 'foreign' };
    }
    return { key: null, partition: int(partitions), keyMode: 'nokey' };
  };

  const makeImpression = (id: string, ts: number): Impression => {
    const a = int(o.advertisers);
    const advertiserId = advertiserIds[a];
    const campaignId = `${advertiserId}-cmp-${1 + int(o.campaigns)}`;
    const costMicros = between(100, 5000);
    const body: Record<string, unknown> = { impression_id: id, ts, advertiser_id: advertiserId, campaign_id: campaignId, cost_micros: costMicros };
    if (rng() < 0.8) body.creative_id = `cr-${1 + int(20)}`;
    if (rng() < 0.8) body.publisher_id = `pub-${1 + int(50)}`;
    if (rng() < 0.8) body.country = COUNTRIES[int(COUNTRIES.length)];
    if (rng() < 0.8) body.device = DEVICES[int(DEVICES.length)];
    return { id, ts, advertiserId, campaignId, costMicros, value: JSON.stringify(body) };
  };

  const badRecord = (n: number, kind: BadKind, ts: number): { id: string; value: string } => {
    const id = `${o.idPrefix}${tag}-B${n}`;
    const good = (): Record<string, unknown> => ({
      impression_id: id, ts, advertiser_id: advertiserIds[int(o.advertisers)],
      campaign_id: `${advertiserIds[0]}-cmp-1`, cost_micros: between(100, 5000),
    });
    const b = good();
    switch (kind) {
      case 'bad_json': return { id, value: '{not json' };
      case 'not_object': return { id, value: '[1,2]' };
      case 'missing_field': delete b.campaign_id; break;
      case 'bad_type': b.advertiser_id = 42; break;
      case 'bad_id': b.advertiser_id = 'adv 1!'; break;
      case 'bad_timestamp': b.ts = 'yesterday'; break;
      case 'bad_cost': b.cost_micros = -5; break;
      case 'too_large': {
        const base = JSON.stringify(b).length;
        b.padding = 'x'.repeat(TOO_LARGE_BYTES - base);
        break;
      }
      case 'future_timestamp': b.ts = ts + futureAhead; break;
    }
    return { id, value: JSON.stringify(b) };
  };

  // ---- main part: originals, with soon duplicates and malformed records inserted after them.
  const n = o.count;
  const duplicateTotal = n === 0 ? 0 : Math.round(o.duplicates * n);
  let lateRetryTotal = Math.round(o.lateRetryRatio * duplicateTotal);
  const soonTotal = duplicateTotal - lateRetryTotal;

  type Slot = { kind: 'original'; i: number } | { kind: 'duplicate'; i: number } | { kind: 'bad'; b: number };
  const after: Slot[][] = Array.from({ length: Math.max(n, 1) }, () => []);
  for (let d = 0; d < soonTotal; d++) {
    const i = int(n);
    after[Math.min(n - 1, i + 1 + int(SOON_DUPLICATE_WITHIN))].push({ kind: 'duplicate', i });
  }
  for (let b = 0; b < o.bad; b++) {
    after[n === 0 ? 0 : Math.min(n - 1, Math.floor(((b + 0.5) * n) / o.bad))].push({ kind: 'bad', b });
  }
  const slots: Slot[] = [];
  for (let j = 0; j < Math.max(n, 1); j++) {
    if (j < n) slots.push({ kind: 'original', i: j });
    for (const s of after[j]) slots.push(s);
  }

  const originals: Impression[] = new Array(n);
  const counted: Impression[] = [];
  const records: PlannedRecord[] = [];
  const deadLetters = emptyDeadLetters();
  const slotCount = slots.length;
  for (let k = 0; k < slotCount; k++) {
    const s = slots[k];
    // Where this record sits in event time: paced mode follows the schedule, count mode the span.
    const dueMs = paced ? Math.floor((k * durationMs) / slotCount) : 0;
    const nominalTs = paced ? ctx.now + dueMs : endTs - spanMs + Math.floor(((k + 0.5) * spanMs) / slotCount);
    if (s.kind === 'original') {
      const imp = makeImpression(`${o.idPrefix}${tag}-${s.i.toString(36)}`, nominalTs - int(o.jitterMs + 1));
      originals[s.i] = imp;
      counted.push(imp);
      records.push({ ...route(imp.id, pickMode()), value: imp.value, kind: 'original', reason: null, dueMs });
    } else if (s.kind === 'duplicate') {
      const imp = originals[s.i];
      records.push({ ...route(imp.id, pickMode()), value: imp.value, kind: 'duplicate', reason: null, dueMs });
    } else {
      const kind = BAD_KINDS[s.b % BAD_KINDS.length];
      const r = badRecord(s.b, kind, nominalTs);
      records.push({ ...route(r.id, pickMode()), value: r.value, kind: 'bad', reason: kind, dueMs });
      deadLetters[kind]++;
    }
  }
  const mainCount = records.length;

  // ---- tail: retries much later (only of originals young enough to be deduplicated for sure).
  const eligible = originals.filter((imp) => endTs - imp.ts <= safeAge);
  if (eligible.length === 0) lateRetryTotal = 0;
  for (let d = 0; d < lateRetryTotal; d++) {
    const imp = eligible[int(eligible.length)];
    records.push({ ...route(imp.id, pickMode()), value: imp.value, kind: 'late_retry', reason: null, dueMs: 0 });
  }
  const lateFrom = records.length;
  let lateWatermark: number | null = null;
  /** The aggregator's rules: closed from watermark = window end + lateness on, too late from + horizon on. */
  const needs = (ts: number, horizonMs: number) => {
    const at = Math.floor(ts / windowMs) * windowMs + windowMs + ctx.allowedLatenessMs + horizonMs;
    lateWatermark = Math.max(lateWatermark ?? at, at);
  };
  for (let l = 0; l < o.lateWithinHorizon; l++) {
    const imp = makeImpression(`${o.idPrefix}${tag}-L${l}`, endTs - between(lateMinAge, lateMaxAge));
    counted.push(imp);
    records.push({ ...route(imp.id, pickMode()), value: imp.value, kind: 'late_within_horizon', reason: null, dueMs: 0 });
    needs(imp.ts, 0);
  }
  const tooLate: Impression[] = [];
  for (let t = 0; t < o.tooLate; t++) {
    tooLate.push(makeImpression(`${o.idPrefix}${tag}-T${t}`, endTs - tooLateAge - int(10 * MIN)));
  }
  for (const imp of tooLate) {
    records.push({ ...route(imp.id, pickMode()), value: imp.value, kind: 'too_late', reason: 'too_late', dueMs: 0 });
    deadLetters.too_late++;
    needs(imp.ts, ctx.dedupHorizonMs);
  }

  // ---- the truth: unique counted impressions per (window, advertiser, campaign).
  const rows = new Map<string, TruthRow>();
  for (const imp of counted) {
    const windowStart = Math.floor(imp.ts / windowMs) * windowMs;
    const row = { windowStart, advertiserId: imp.advertiserId, campaignId: imp.campaignId, impressions: 0, spendMicros: 0 };
    const k = truthRowKey(row);
    const r = rows.get(k) ?? row;
    r.impressions++;
    r.spendMicros += imp.costMicros;
    rows.set(k, r);
  }
  const generatedAt = new Date(ctx.now).toISOString();
  const duplicatesSent = records.filter((r) => r.kind === 'duplicate' || r.kind === 'late_retry').length;
  const truth: GroundTruth = {
    windowMs,
    idPrefix: o.idPrefix,
    generatedAt,
    counts: {
      sent: records.length,
      valid: counted.length + duplicatesSent + tooLate.length,
      unique: counted.length,
      duplicatesSent,
      lateWithinHorizon: o.lateWithinHorizon,
    },
    deadLetters,
    rows: [...rows.values()].sort(compareTruthRows),
    phases: [{ idPrefix: o.idPrefix, seed: o.seed, generatedAt }],
  };
  return { options: o, context: ctx, records, mainCount, paced, durationMs, lateFrom, lateWatermark, truth };
}
