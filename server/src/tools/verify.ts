/**
 * Compares ClickHouse's exact totals (impression_counts FINAL, summed over source partitions)
 * with a ground truth, re-polling until they are equal or the timeout passes (the pipeline
 * settles). Numbers are compared as BigInt, never as floats.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse, identifier, queryRows, stringLiteral } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import { compareTruthRows, truthRowKey, truthTotals, type GroundTruth } from './ground-truth.js';
import { diffDeadLetters, readDeadLetters, type DeadLetterDiff } from './dlq-reader.js';

/** One (window, advertiser, campaign) as ClickHouse has it, sums exact. */
export interface ActualRow {
  windowStart: number;
  advertiserId: string;
  campaignId: string;
  impressions: bigint;
  spendMicros: bigint;
}

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

/** The LIKE pattern matching every string that starts with prefix (%, _ and \ escaped). */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The query verify runs; exported for the docs and tests. */
export function actualRowsSql(database: string, idPrefix: string): string {
  const where = idPrefix === '' ? '' : `WHERE advertiser_id LIKE ${stringLiteral(likePrefix(idPrefix))} `;
  return `SELECT toUnixTimestamp(window_start) * 1000 AS ws, advertiser_id, campaign_id, `
    + `sum(impressions) AS imps, sum(spend_micros) AS spend `
    + `FROM ${identifier(database)}.impression_counts FINAL ${where}`
    + `GROUP BY ws, advertiser_id, campaign_id`;
}

interface RawRow {
  ws: string | number;
  advertiser_id: string;
  campaign_id: string;
  imps: string | number;
  spend: string | number;
}

/** The exact per-key sums in ClickHouse for ids starting with idPrefix (all rows when empty). */
export async function queryActualRows(ch: ClickHouseClient, database: string, idPrefix: string): Promise<ActualRow[]> {
  const raw = await queryRows<RawRow>(ch, actualRowsSql(database, idPrefix));
  return raw.map((r) => ({
    windowStart: Number(r.ws),
    advertiserId: r.advertiser_id,
    campaignId: r.campaign_id,
    impressions: BigInt(r.imps),
    spendMicros: BigInt(r.spend),
  }));
}

/** Compares per key; pure. Differences sorted by window, advertiser, campaign. */
export function compareWithTruth(truth: Pick<GroundTruth, 'rows'>, actualRows: ActualRow[]): Comparison {
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
  return {
    ok: differences.length === 0,
    differences,
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
    ok: false, differences: [], expected: emptyTotals, actual: emptyTotals, attempts: 0, elapsedMs: 0, deadLetters: null, error: null,
  };
  let equalSince: number | null = null;
  try {
    for (let attempt = 1; ; attempt++) {
      const attemptAt = Date.now();
      try {
        const cmp = compareWithTruth(truth, await queryActualRows(ch, config.clickhouse.database, truth.idPrefix));
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
        attempt, elapsedMs: last.elapsedMs, differences: last.differences.length,
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

/** A human report: differences as a table (at most maxLines), then the totals. */
export function formatVerifyReport(result: VerifyResult, maxLines = 50): string {
  const lines: string[] = [];
  if (result.differences.length > 0) {
    const header = ['window_start', 'advertiser_id', 'campaign_id', 'kind', 'impressions exp', 'impressions act', 'spend exp', 'spend act'];
    const rows = result.differences.slice(0, maxLines).map((d) => [
      fmtWindow(d.windowStart), d.advertiserId, d.campaignId, d.kind,
      d.expectedImpressions ?? '-', d.actualImpressions ?? '-', d.expectedSpendMicros ?? '-', d.actualSpendMicros ?? '-',
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const fmt = (r: string[]) => r.map((c, i) => (i >= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
    lines.push(fmt(header), ...rows.map(fmt));
    if (result.differences.length > maxLines) lines.push(`… and ${result.differences.length - maxLines} more`);
    const byKind = { missing: 0, extra: 0, different: 0 };
    for (const d of result.differences) byKind[d.kind]++;
    lines.push(`${result.differences.length} differing keys: ${byKind.missing} missing, ${byKind.extra} extra, ${byKind.different} different`);
  }
  if (result.deadLetters && result.deadLetters.length > 0) {
    lines.push('dead letters differ:');
    for (const d of result.deadLetters) lines.push(`  ${d.reason.padEnd(18)} expected ${d.expected}  actual ${d.actual}`);
  }
  if (result.error) lines.push(`last error: ${result.error}`);
  lines.push(`rows         expected ${result.expected.rows}  actual ${result.actual.rows}`);
  lines.push(`impressions  expected ${result.expected.impressions}  actual ${result.actual.impressions}`);
  lines.push(`spend_micros expected ${result.expected.spendMicros}  actual ${result.actual.spendMicros}`);
  lines.push(result.ok
    ? `OK: ClickHouse matches the truth${result.deadLetters ? ' (and the DLQ)' : ''} after ${result.attempts} attempt(s), ${(result.elapsedMs / 1000).toFixed(1)} s`
    : `MISMATCH after ${result.attempts} attempt(s), ${(result.elapsedMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}
