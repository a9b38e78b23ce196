/**
 * The ground truth of a generated run: what the pipeline must end up with. Written by
 * `tally generate --truth FILE`, read by `tally verify --truth FILE` and by every exactness test.
 *
 * All numbers are exact integers (spend in micros); a truth file is plain JSON.
 */
import fs from 'node:fs';
import { InvalidArgumentError } from '../errors/index.js';
import { DEAD_LETTER_REASONS, type DeadLetterReason } from '../contracts/dead-letter-reasons.js';
import { BreakdownSums, mergeBreakdowns, parseBreakdowns, type DimensionValues, type TruthBreakdowns } from './truth-breakdowns.js';

/** The expected counts of one (window, advertiser, campaign), over all source partitions. */
export interface TruthRow {
  /** Window start, epoch ms (a multiple of windowMs). */
  windowStart: number;
  advertiserId: string;
  campaignId: string;
  /** Unique valid impressions counted in this window. */
  impressions: number;
  /** Exact sum of their cost_micros. */
  spendMicros: number;
  /**
   * The same impressions by each dimension's value (truth-breakdowns.ts). Absent where the truth
   * does not know them (hand-made truths, files written before breakdowns): not compared there.
   */
  breakdowns?: TruthBreakdowns;
}

/** A counted impression, as the truth sums it. */
export interface CountedImpression {
  ts: number;
  advertiserId: string;
  campaignId: string;
  costMicros: number;
  dimensionValues: DimensionValues;
}

export interface TruthCounts {
  /** Records produced to the impressions topic (everything: originals, duplicates, late, too late, malformed). */
  sent: number;
  /** Records that pass validation: every copy of a counted impression plus the too-late ones. */
  valid: number;
  /** Distinct impressions that must be counted (the sum of rows[].impressions). */
  unique: number;
  /** Extra copies of counted impressions (same id, ts and body as the first copy). */
  duplicatesSent: number;
  /** Impressions sent at the end with an event time 10–30 min old: counted, their windows revised. */
  lateWithinHorizon: number;
}

/** One generate run that went into a truth (mergeTruth keeps them all). */
export interface TruthPhase {
  idPrefix: string;
  seed: number;
  generatedAt: string;
}

export interface GroundTruth {
  windowMs: number;
  /** Every advertiser id of the run starts with it (verify filters ClickHouse rows by it). */
  idPrefix: string;
  /** ISO-8601 time the plan was built. */
  generatedAt: string;
  counts: TruthCounts;
  /** Expected records on the dead-letter topic per reason (including too_late). */
  deadLetters: Record<DeadLetterReason, number>;
  /** Sorted by windowStart, advertiserId, campaignId. */
  rows: TruthRow[];
  /** The generate runs merged into this truth. */
  phases: TruthPhase[];
}

export function emptyDeadLetters(): Record<DeadLetterReason, number> {
  const out = {} as Record<DeadLetterReason, number>;
  for (const r of DEAD_LETTER_REASONS) out[r] = 0;
  return out;
}

export function truthRowKey(r: { windowStart: number; advertiserId: string; campaignId: string }): string {
  return `${r.windowStart}|${r.advertiserId}|${r.campaignId}`;
}

export function compareTruthRows(a: TruthRow, b: TruthRow): number {
  if (a.windowStart !== b.windowStart) return a.windowStart - b.windowStart;
  if (a.advertiserId !== b.advertiserId) return a.advertiserId < b.advertiserId ? -1 : 1;
  if (a.campaignId !== b.campaignId) return a.campaignId < b.campaignId ? -1 : 1;
  return 0;
}

/** The truth's rows for these counted impressions (each counted once): per (window, advertiser, campaign), with breakdowns, sorted. */
export function truthRowsOf(counted: Iterable<CountedImpression>, windowMs: number): TruthRow[] {
  const rows = new Map<string, { row: TruthRow; breakdowns: BreakdownSums }>();
  for (const imp of counted) {
    const row: TruthRow = { windowStart: Math.floor(imp.ts / windowMs) * windowMs, advertiserId: imp.advertiserId, campaignId: imp.campaignId, impressions: 0, spendMicros: 0 };
    const k = truthRowKey(row);
    let held = rows.get(k);
    if (held === undefined) rows.set(k, (held = { row, breakdowns: new BreakdownSums() }));
    held.row.impressions++;
    held.row.spendMicros += imp.costMicros;
    held.breakdowns.addImpression(imp.dimensionValues, imp.costMicros);
  }
  return [...rows.values()].map(({ row, breakdowns }) => ({ ...row, breakdowns: breakdowns.toTruth() })).sort(compareTruthRows);
}

/** Sums of the rows: what `SELECT sum(impressions), sum(spend_micros)` must return. */
export function truthTotals(truth: Pick<GroundTruth, 'rows'>): { impressions: bigint; spendMicros: bigint } {
  let impressions = 0n;
  let spendMicros = 0n;
  for (const r of truth.rows) {
    impressions += BigInt(r.impressions);
    spendMicros += BigInt(r.spendMicros);
  }
  return { impressions, spendMicros };
}

function commonPrefix(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return a.slice(0, i);
}

/**
 * The truth of two runs together (a test that generates in several phases compares the union).
 * The runs must have distinct (idPrefix, seed) pairs, or their impression ids would be the same
 * and the second run would be nothing but duplicates. idPrefix becomes the two prefixes' common
 * prefix (possibly empty: verify then compares the whole table). Breakdowns of a key both runs
 * counted add up where both know them.
 */
export function mergeTruth(a: GroundTruth, b: GroundTruth): GroundTruth {
  if (a.windowMs !== b.windowMs) {
    throw new InvalidArgumentError(`cannot merge truths of different window sizes (${a.windowMs} and ${b.windowMs} ms)`);
  }
  const seen = new Set(a.phases.map((p) => `${p.idPrefix}\u0000${p.seed}`));
  for (const p of b.phases) {
    if (seen.has(`${p.idPrefix}\u0000${p.seed}`)) {
      throw new InvalidArgumentError(`cannot merge two runs with the same id prefix ${JSON.stringify(p.idPrefix)} and seed ${p.seed}: their impression ids collide`);
    }
  }
  const rows = new Map<string, TruthRow>();
  for (const r of [...a.rows, ...b.rows]) {
    const k = truthRowKey(r);
    const prev = rows.get(k);
    if (prev) {
      const { breakdowns: _, ...sum } = prev;
      const breakdowns = mergeBreakdowns(prev.breakdowns, r.breakdowns);
      rows.set(k, { ...sum, impressions: prev.impressions + r.impressions, spendMicros: prev.spendMicros + r.spendMicros, ...(breakdowns === undefined ? {} : { breakdowns }) });
    } else {
      rows.set(k, { ...r });
    }
  }
  const deadLetters = emptyDeadLetters();
  for (const r of DEAD_LETTER_REASONS) deadLetters[r] = (a.deadLetters[r] ?? 0) + (b.deadLetters[r] ?? 0);
  return {
    windowMs: a.windowMs,
    idPrefix: commonPrefix(a.idPrefix, b.idPrefix),
    generatedAt: a.generatedAt > b.generatedAt ? a.generatedAt : b.generatedAt,
    counts: {
      sent: a.counts.sent + b.counts.sent,
      valid: a.counts.valid + b.counts.valid,
      unique: a.counts.unique + b.counts.unique,
      duplicatesSent: a.counts.duplicatesSent + b.counts.duplicatesSent,
      lateWithinHorizon: a.counts.lateWithinHorizon + b.counts.lateWithinHorizon,
    },
    deadLetters,
    rows: [...rows.values()].sort(compareTruthRows),
    phases: [...a.phases, ...b.phases],
  };
}

export function writeTruth(file: string, truth: GroundTruth): void {
  fs.writeFileSync(file, `${JSON.stringify(truth, null, 2)}\n`);
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Reads and checks a truth file; a file that is not one throws an InvalidArgumentError naming it. */
export function readTruth(file: string): GroundTruth {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`cannot read truth file ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return parseTruth(parsed, file);
}

export function parseTruth(value: unknown, what = 'truth'): GroundTruth {
  const bad = (m: string): never => {
    throw new InvalidArgumentError(`${what} is not a ground-truth file: ${m}`);
  };
  if (typeof value !== 'object' || value === null) return bad('not an object');
  const t = value as Partial<GroundTruth>;
  if (!isInt(t.windowMs) || t.windowMs === 0) bad('windowMs');
  if (typeof t.idPrefix !== 'string') bad('idPrefix');
  if (typeof t.counts !== 'object' || t.counts === null) bad('counts');
  if (typeof t.deadLetters !== 'object' || t.deadLetters === null) bad('deadLetters');
  if (!Array.isArray(t.rows)) bad('rows');
  const rows = (t.rows as unknown[]).map((r, i) => {
    const row = r as Partial<TruthRow>;
    if (typeof r !== 'object' || r === null || !isInt(row.windowStart) || typeof row.advertiserId !== 'string'
      || typeof row.campaignId !== 'string' || !isInt(row.impressions) || !isInt(row.spendMicros)) {
      return bad(`rows[${i}]`);
    }
    const { breakdowns, ...counts } = row as TruthRow;
    if (breakdowns === undefined) return counts;
    return { ...counts, breakdowns: parseBreakdowns(breakdowns, counts, (m) => bad(`rows[${i}].breakdowns: ${m}`)) };
  });
  const deadLetters = emptyDeadLetters();
  for (const r of DEAD_LETTER_REASONS) {
    const n = (t.deadLetters as Record<string, unknown>)[r] ?? 0;
    if (!isInt(n)) bad(`deadLetters.${r}`);
    deadLetters[r] = n as number;
  }
  const c = t.counts as Partial<TruthCounts>;
  const counts: TruthCounts = {
    sent: c.sent ?? 0, valid: c.valid ?? 0, unique: c.unique ?? 0,
    duplicatesSent: c.duplicatesSent ?? 0, lateWithinHorizon: c.lateWithinHorizon ?? 0,
  };
  for (const [k, v] of Object.entries(counts)) if (!isInt(v)) bad(`counts.${k}`);
  return {
    windowMs: t.windowMs as number,
    idPrefix: t.idPrefix as string,
    generatedAt: typeof t.generatedAt === 'string' ? t.generatedAt : '',
    counts,
    deadLetters,
    rows: rows.sort(compareTruthRows),
    phases: Array.isArray(t.phases) ? t.phases : [],
  };
}
