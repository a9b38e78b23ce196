/**
 * Compares ClickHouse's exact totals (impression_counts FINAL, summed over source partitions)
 * and breakdowns (impression_breakdowns FINAL, per configured dimension and value: see
 * breakdown-comparison.ts) with a ground truth, re-polling until they are equal or the timeout
 * passes (the pipeline settles). Numbers are compared as BigInt, never as floats.
 */
import { createClickHouse } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import type { Dimension } from '../contracts/dimensions.js';
import { compareBreakdowns, truthDimensions, type BreakdownCheck, type BreakdownDifference } from './breakdown-comparison.js';
import { compareTruthRows, truthRowKey, truthTotals, type GroundTruth } from './ground-truth.js';
import { diffDeadLetters, readDeadLetters, type DeadLetterDiff } from './dlq-reader.js';
import { queryActualBreakdowns, queryActualRows, type ActualBreakdownRow, type ActualRow } from './verify-sql.js';

export interface VerifyDifference {
  windowStart: number;
  advertiserId: string;
  campaignId: string;
  /** missing: in the truth, not in ClickHouse; extra: the other way round; different: both, other numbers. */
  kind: 'missing' | 'extra' | 'different';
  /** Decimal strings; null on the side that has no row. */
  expectedImpressions: string | null;
  actualImpressions: string | null;
  expectedSpendMicros: string | null;
  actualSpendMicros: string | null;
}

export interface VerifyTotals {
  rows: number;
  /** Decimal strings (exact). */
  impressions: string;
  spendMicros: string;
}

export interface Comparison {
  ok: boolean;
  differences: VerifyDifference[];
  expected: VerifyTotals;
  actual: VerifyTotals;
  /** The breakdowns' comparison: which dimensions, how, and their differences (also failing `ok`). */
  breakdowns: BreakdownCheck;
}

/** ClickHouse's breakdowns to compare: the configured dimensions, and the rows read for them. */
export interface ActualBreakdowns {
  dimensions: readonly Dimension[];
  rows: readonly ActualBreakdownRow[];
}

export interface VerifyResult extends Comparison {
  attempts: number;
  elapsedMs: number;
  /** With checkDeadLetters: reasons whose DLQ counts differ from the truth (empty when equal); else null. */
  deadLetters: DeadLetterDiff[] | null;
  /** The last query error, if the last attempt failed. */
  error: string | null;
}

export interface VerifyProgress {
  attempt: number;
  elapsedMs: number;
  differences: number;
  breakdownDifferences: number;
  deadLetterDifferences: number | null;
  expected: VerifyTotals;
  actual: VerifyTotals;
  error: string | null;
}

export interface VerifyOptions {
  /** Keep polling this long for equality (default 120 s). 0: one attempt. */
  timeoutMs?: number;
  /** Between attempts (default 1000 ms). */
  intervalMs?: number;
  /** Equality must hold this long (polled) before verify passes (default 0: the first equal answer). */
  stableMs?: number;
  /** Also compare the DLQ topic's counts per reason with truth.deadLetters (exact only on topics this truth alone wrote to). */
  checkDeadLetters?: boolean;
  onProgress?: (p: VerifyProgress) => void;
}

/**
 * Compares per key, and per dimension value with `breakdowns` (omitted: breakdowns not compared);
 * pure. Differences sorted by window, advertiser, campaign (then dimension, value).
 */
export function compareWithTruth(truth: Pick<GroundTruth, 'rows'>, actualRows: ActualRow[], breakdowns: ActualBreakdowns = { dimensions: [], rows: [] }): Comparison {
  const actual = new Map<string, ActualRow>();
  let actImps = 0n;
  let actSpend = 0n;
  for (const r of actualRows) {
    actual.set(truthRowKey(r), r);
    actImps += r.impressions;
    actSpend += r.spendMicros;
  }
  const differences: VerifyDifference[] = [];
  const seen = new Set<string>();
  for (const t of truth.rows) {
    const k = truthRowKey(t);
    seen.add(k);
    const a = actual.get(k);
    const base = { windowStart: t.windowStart, advertiserId: t.advertiserId, campaignId: t.campaignId,
      expectedImpressions: String(t.impressions), expectedSpendMicros: String(t.spendMicros) };
    if (!a) {
      differences.push({ ...base, kind: 'missing', actualImpressions: null, actualSpendMicros: null });
    } else if (a.impressions !== BigInt(t.impressions) || a.spendMicros !== BigInt(t.spendMicros)) {
      differences.push({ ...base, kind: 'different', actualImpressions: String(a.impressions), actualSpendMicros: String(a.spendMicros) });
    }
  }
  for (const [k, a] of actual) {
    if (seen.has(k)) continue;
    differences.push({
      windowStart: a.windowStart, advertiserId: a.advertiserId, campaignId: a.campaignId, kind: 'extra',
      expectedImpressions: null, actualImpressions: String(a.impressions), expectedSpendMicros: null, actualSpendMicros: String(a.spendMicros),
    });
  }
  differences.sort((x, y) => compareTruthRows(
    { ...x, impressions: 0, spendMicros: 0 }, { ...y, impressions: 0, spendMicros: 0 }));
  const exp = truthTotals(truth);
  const breakdownCheck = compareBreakdowns(truth.rows, breakdowns.rows, breakdowns.dimensions);
  return {
    ok: differences.length === 0 && breakdownCheck.differences.length === 0,
    differences,
    breakdowns: breakdownCheck,
    expected: { rows: truth.rows.length, impressions: String(exp.impressions), spendMicros: String(exp.spendMicros) },
    actual: { rows: actualRows.length, impressions: String(actImps), spendMicros: String(actSpend) },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls ClickHouse (and the DLQ with checkDeadLetters) until it matches the truth (for stableMs)
 * or timeoutMs passes; resolves with the last comparison either way (never rejects for a
 * mismatch or an unreachable ClickHouse: `ok` is false and `error` says why).
 */
export async function verify(config: TallyConfig, truth: GroundTruth, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const intervalMs = opts.intervalMs ?? 1000;
  const stableMs = opts.stableMs ?? 0;
  const started = Date.now();
  const ch = createClickHouse(config, { requestTimeoutMs: Math.max(5_000, Math.min(30_000, timeoutMs)) });
  const emptyTotals: VerifyTotals = { rows: 0, impressions: '0', spendMicros: '0' };
  let last: VerifyResult = {
    ok: false, differences: [], expected: emptyTotals, actual: emptyTotals,
    breakdowns: { dimensions: [], notCompared: 'nothing read from ClickHouse yet', exact: 0, folded: 0, differences: [] },
    attempts: 0, elapsedMs: 0, deadLetters: null, error: null,
  };
  // Only what the truth knows is read: a hand-made truth or an older file has no breakdowns.
  const known = truthDimensions(truth.rows);
  const dimensions = config.dimensions.filter((d) => known.has(d));
  const { database } = config.clickhouse;
  let equalSince: number | null = null;
  try {
    for (let attempt = 1; ; attempt++) {
      const attemptAt = Date.now();
      try {
        const rows = await queryActualRows(ch, database, truth.idPrefix);
        const breakdownRows = await queryActualBreakdowns(ch, database, truth.idPrefix, dimensions);
        const cmp = compareWithTruth(truth, rows, { dimensions: config.dimensions, rows: breakdownRows });
        let dl: DeadLetterDiff[] | null = null;
        if (opts.checkDeadLetters) {
          dl = diffDeadLetters(truth.deadLetters, await readDeadLetters(config, { timeoutMs: Math.max(5_000, Math.min(30_000, timeoutMs)) }));
        }
        const ok = cmp.ok && (dl === null || dl.length === 0);
        last = { ...cmp, ok, attempts: attempt, elapsedMs: Date.now() - started, deadLetters: dl, error: null };
      } catch (err) {
        last = { ...last, ok: false, attempts: attempt, elapsedMs: Date.now() - started, error: err instanceof Error ? err.message : String(err) };
      }
      opts.onProgress?.({
        attempt, elapsedMs: last.elapsedMs, differences: last.differences.length, breakdownDifferences: last.breakdowns.differences.length,
        deadLetterDifferences: last.deadLetters?.length ?? null, expected: last.expected, actual: last.actual, error: last.error,
      });
      if (last.ok) {
        equalSince ??= attemptAt;
        if (Date.now() - equalSince >= stableMs) return last;
      } else {
        equalSince = null;
      }
      const now = Date.now();
      // Past the timeout, only an equality that started in time gets its stableMs to prove itself.
      if (now - started >= timeoutMs && (equalSince === null || now - started >= timeoutMs + stableMs)) return { ...last, ok: false };
      await sleep(Math.max(0, intervalMs - (now - attemptAt)));
    }
  } finally {
    await ch.close();
  }
}

function fmtWindow(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** Lines of a table: columns padded to their width, those from `numericFrom` on right-aligned. */
function table(header: string[], rows: string[][], numericFrom: number): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i >= numericFrom ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

type Numbers = Pick<VerifyDifference, 'expectedImpressions' | 'actualImpressions' | 'expectedSpendMicros' | 'actualSpendMicros'>;
const NUMBER_HEADER = ['impressions exp', 'impressions act', 'spend exp', 'spend act'];
const numbers = (d: Numbers) => [d.expectedImpressions ?? '-', d.actualImpressions ?? '-', d.expectedSpendMicros ?? '-', d.actualSpendMicros ?? '-'];

function countsLines(differences: VerifyDifference[], maxLines: number): string[] {
  const lines = table(
    ['window_start', 'advertiser_id', 'campaign_id', 'kind', ...NUMBER_HEADER],
    differences.slice(0, maxLines).map((d) => [fmtWindow(d.windowStart), d.advertiserId, d.campaignId, d.kind, ...numbers(d)]),
    4,
  );
  if (differences.length > maxLines) lines.push(`… and ${differences.length - maxLines} more`);
  const byKind = { missing: 0, extra: 0, different: 0 };
  for (const d of differences) byKind[d.kind]++;
  lines.push(`${differences.length} differing keys: ${byKind.missing} missing, ${byKind.extra} extra, ${byKind.different} different`);
  return lines;
}

function breakdownLines(differences: BreakdownDifference[], maxLines: number): string[] {
  const lines = table(
    ['window_start', 'advertiser_id', 'campaign_id', 'dimension', 'value', 'kind', ...NUMBER_HEADER],
    differences.slice(0, maxLines).map((d) => [fmtWindow(d.windowStart), d.advertiserId, d.campaignId, d.dimension, d.value ?? '(sum)', d.kind, ...numbers(d)]),
    6,
  );
  if (differences.length > maxLines) lines.push(`… and ${differences.length - maxLines} more`);
  const byKind = { missing: 0, extra: 0, different: 0, above_truth: 0, sum_different: 0 };
  for (const d of differences) byKind[d.kind]++;
  lines.push(`${differences.length} differing breakdown values: ${byKind.missing} missing, ${byKind.extra} extra, ${byKind.different} different, `
    + `${byKind.above_truth} above the truth, ${byKind.sum_different} sums different (these two where \`other\` holds values)`);
  return lines;
}

/** A human report: differences as tables (at most maxLines each), then the totals. */
export function formatVerifyReport(result: VerifyResult, maxLines = 50): string {
  const lines: string[] = [];
  if (result.differences.length > 0) lines.push(...countsLines(result.differences, maxLines));
  if (result.breakdowns.differences.length > 0) lines.push(...breakdownLines(result.breakdowns.differences, maxLines));
  if (result.deadLetters && result.deadLetters.length > 0) {
    lines.push('dead letters differ:');
    for (const d of result.deadLetters) lines.push(`  ${d.reason.padEnd(18)} expected ${d.expected}  actual ${d.actual}`);
  }
  if (result.error) lines.push(`last error: ${result.error}`);
  lines.push(`rows         expected ${result.expected.rows}  actual ${result.actual.rows}`);
  lines.push(`impressions  expected ${result.expected.impressions}  actual ${result.actual.impressions}`);
  lines.push(`spend_micros expected ${result.expected.spendMicros}  actual ${result.actual.spendMicros}`);
  const b = result.breakdowns;
  lines.push(b.notCompared !== null
    ? `breakdowns   not compared: ${b.notCompared}`
    : `breakdowns   ${b.dimensions.join(', ')}: ${b.exact} compared value by value, ${b.folded} by the \`other\` rule`);
  lines.push(result.ok
    ? `OK: ClickHouse matches the truth${result.deadLetters ? ' (and the DLQ)' : ''} after ${result.attempts} attempt(s), ${(result.elapsedMs / 1000).toFixed(1)} s`
    : `MISMATCH after ${result.attempts} attempt(s), ${(result.elapsedMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}
