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
import type { DeadLetterReason } from '../contracts/dead-letter-reasons.js';
import { EventFactory, type Impression, type RecordRoute } from './event-factory.js';
import { BAD_KINDS, resolveGeneratorOptions, type GeneratorOptions, type PlanContext } from './generator-options.js';
import { emptyDeadLetters, truthRowsOf, type GroundTruth } from './ground-truth.js';

export {
  type KeyMode, type KeyModeOption, type BadKind, type GeneratorOptions, type PlanContext,
  KEY_MODE_OPTIONS, BAD_KINDS, TOO_LARGE_BYTES, DEFAULT_GENERATOR_OPTIONS, planContext, resolveGeneratorOptions,
} from './generator-options.js';
export { createRng } from './event-factory.js';

export type RecordKind = 'original' | 'duplicate' | 'late_retry' | 'late_within_horizon' | 'too_late' | 'bad';

export interface PlannedRecord extends RecordRoute {
  /** Kafka value (UTF-8). */
  value: string;
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

const SOON_DUPLICATE_WITHIN = 300;
const MIN = 60_000;

/**
 * Builds the plan. Throws InvalidArgumentError when the options cannot give an exact truth with
 * these pipeline settings (e.g. a span so long that re-sent events would fall beyond the dedup
 * horizon).
 */
export function buildEventPlan(partial: Partial<GeneratorOptions> & { seed: number }, ctx: PlanContext): EventPlan {
  const o = resolveGeneratorOptions(partial);
  const f = new EventFactory(o, ctx);
  const { windowMs } = ctx;
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

  // ---- main part: originals, with soon duplicates and malformed records inserted after them.
  const n = o.count;
  const duplicateTotal = n === 0 ? 0 : Math.round(o.duplicates * n);
  let lateRetryTotal = Math.round(o.lateRetryRatio * duplicateTotal);
  const soonTotal = duplicateTotal - lateRetryTotal;

  type Slot = { kind: 'original'; i: number } | { kind: 'duplicate'; i: number } | { kind: 'bad'; b: number };
  const after: Slot[][] = Array.from({ length: Math.max(n, 1) }, () => []);
  for (let d = 0; d < soonTotal; d++) {
    const i = f.int(n);
    after[Math.min(n - 1, i + 1 + f.int(SOON_DUPLICATE_WITHIN))].push({ kind: 'duplicate', i });
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
      const imp = f.impression(f.id(s.i.toString(36)), nominalTs - f.int(o.jitterMs + 1));
      originals[s.i] = imp;
      counted.push(imp);
      records.push({ ...f.route(imp.id, f.pickMode()), value: imp.value, kind: 'original', reason: null, dueMs });
    } else if (s.kind === 'duplicate') {
      const imp = originals[s.i];
      records.push({ ...f.route(imp.id, f.pickMode()), value: imp.value, kind: 'duplicate', reason: null, dueMs });
    } else {
      const kind = BAD_KINDS[s.b % BAD_KINDS.length];
      const r = f.badRecord(s.b, kind, nominalTs);
      records.push({ ...f.route(r.id, f.pickMode()), value: r.value, kind: 'bad', reason: kind, dueMs });
      deadLetters[kind]++;
    }
  }
  const mainCount = records.length;

  // ---- tail: retries much later (only of originals young enough to be deduplicated for sure).
  const eligible = originals.filter((imp) => endTs - imp.ts <= safeAge);
  if (eligible.length === 0) lateRetryTotal = 0;
  for (let d = 0; d < lateRetryTotal; d++) {
    const imp = eligible[f.int(eligible.length)];
    records.push({ ...f.route(imp.id, f.pickMode()), value: imp.value, kind: 'late_retry', reason: null, dueMs: 0 });
  }
  const lateFrom = records.length;
  let lateWatermark: number | null = null;
  /** The aggregator's rules: closed from watermark = window end + lateness on, too late from + horizon on. */
  const needs = (ts: number, horizonMs: number) => {
    const at = Math.floor(ts / windowMs) * windowMs + windowMs + ctx.allowedLatenessMs + horizonMs;
    lateWatermark = Math.max(lateWatermark ?? at, at);
  };
  for (let l = 0; l < o.lateWithinHorizon; l++) {
    const imp = f.impression(f.id(`L${l}`), endTs - f.between(lateMinAge, lateMaxAge));
    counted.push(imp);
    records.push({ ...f.route(imp.id, f.pickMode()), value: imp.value, kind: 'late_within_horizon', reason: null, dueMs: 0 });
    needs(imp.ts, 0);
  }
  const tooLate: Impression[] = [];
  for (let t = 0; t < o.tooLate; t++) {
    tooLate.push(f.impression(f.id(`T${t}`), endTs - tooLateAge - f.int(10 * MIN)));
  }
  for (const imp of tooLate) {
    records.push({ ...f.route(imp.id, f.pickMode()), value: imp.value, kind: 'too_late', reason: 'too_late', dueMs: 0 });
    deadLetters.too_late++;
    needs(imp.ts, ctx.dedupHorizonMs);
  }

  const duplicatesSent = records.filter((r) => r.kind === 'duplicate' || r.kind === 'late_retry').length;
  const generatedAt = new Date(ctx.now).toISOString();
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
    rows: truthRowsOf(counted, windowMs),
    phases: [{ idPrefix: o.idPrefix, seed: o.seed, generatedAt }],
  };
  return { options: o, context: ctx, records, mainCount, paced, durationMs, lateFrom, lateWatermark, truth };
}
