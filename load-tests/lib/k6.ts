/** Running one k6 script of load-tests/ to its end and reading its end-of-test summary. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../server/src/config/index.js';
import { K6_VERSION } from '../../server/src/stack/k6.js';

const loadDir = path.join(repoRoot, 'load-tests');

interface K6Metric {
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}
interface K6Summary {
  metrics: Record<string, K6Metric>;
}
export interface K6Result {
  script: string;
  exitCode: number | null;
  summary: K6Summary;
  failedThresholds: string[];
}

/** "k6 v1.x.y (…)", the first line of `k6 version` (the pinned version if it prints nothing). */
export function k6Version(k6: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const c = spawn(k6, ['version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    c.on('exit', () => resolve(out.trim().split('\n')[0] || K6_VERSION));
  });
}

/**
 * Runs load-tests/<script> to its end (k6 bounds it: duration + gracefulStop) with `env` (tokens
 * not logged); its summary JSON back. `runId` names the summary's temporary file.
 */
export async function runK6(k6: string, script: string, env: Record<string, string>, runId: string, log: (m: string) => void): Promise<K6Result> {
  const summaryPath = path.join(os.tmpdir(), `tally-k6-${runId}-${script.replace(/\W/g, '_')}.json`);
  fs.rmSync(summaryPath, { force: true });
  log(`k6 run ${script} (${Object.entries(env).filter(([k]) => !k.endsWith('TOKEN')).map(([k, v]) => `${k}=${v}`).join(' ')})`);
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(k6, ['run', '--quiet', '--no-usage-report', path.join(loadDir, script)], {
      cwd: repoRoot,
      env: { ...process.env, ...env, SUMMARY_PATH: summaryPath, K6_NO_USAGE_REPORT: 'true' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
  if (!fs.existsSync(summaryPath)) throw new Error(`k6 ${script} exited ${exitCode} without writing its summary`);
  const summary = JSON.parse(fs.readFileSync(summaryPath, 'utf8')) as K6Summary;
  fs.rmSync(summaryPath, { force: true });
  const failedThresholds: string[] = [];
  for (const [name, m] of Object.entries(summary.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds ?? {})) if (!t.ok) failedThresholds.push(`${name} ${expr}`);
  }
  return { script, exitCode, summary, failedThresholds };
}

/** A value of a k6 metric (`count`, `rate`, `p(95)`, …); 0 when the run did not record it. */
export const metric = (r: K6Result, name: string, field: string): number => r.summary.metrics[name]?.values[field] ?? 0;

/** A k6 duration ("30s", "2m", "500ms", a plain number of seconds) in seconds; 1 if unreadable. */
export function parseDurationS(d: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d);
  if (!m) return Number(d) || 1;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : n * 3600;
}
