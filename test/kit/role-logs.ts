/**
 * What a tally role shows while it runs, for tests to wait on instead of sleeping: its JSON log
 * lines (the sandbox sets LOG_FORMAT=json) and its Prometheus metrics.
 */
import { metricValue } from './metrics.js';
import type { RoleProcess } from './role-process.js';
import { eventually } from './waiting.js';

export type LogLine = Record<string, unknown>;

/** The role's log lines whose msg is `msg`, parsed, oldest first (a line still being written is left out). */
export function logLines(proc: RoleProcess, msg: string): LogLine[] {
  const out: LogLine[] = [];
  for (const text of proc.log().split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const line = JSON.parse(text) as LogLine;
      if (line.msg === msg) out.push(line);
    } catch {
      // The last line, half written.
    }
  }
  return out;
}

/** Resolves with the first line of `msg` that `match` accepts, once the role has logged it. */
export async function waitForLog(proc: RoleProcess, msg: string, timeoutMs: number, match: (line: LogLine) => boolean = () => true): Promise<LogLine> {
  let found: LogLine | undefined;
  await eventually(`${proc.role} to log ${msg}`, async () => {
    found = logLines(proc, msg).find(match);
    return found !== undefined;
  }, timeoutMs, 50);
  return found as LogLine;
}

/** The partitions named by the role's latest `msg` line (e.g. aggregator.tasks_owned, sink.partitions_assigned); [] before the first. */
export function latestPartitions(proc: RoleProcess, msg: string): number[] {
  return (logLines(proc, msg).at(-1)?.partitions as number[] | undefined) ?? [];
}

/** The role's /metrics text; its port comes from its `<role>.metrics_listening` line. */
export async function scrapeMetrics(proc: RoleProcess): Promise<string> {
  const { metricsPort } = await waitForLog(proc, `${proc.role}.metrics_listening`, 30_000);
  const res = await fetch(`http://127.0.0.1:${Number(metricsPort)}/metrics`);
  return res.text();
}

/** One metric of the role, scraped now. */
export async function metricOf(proc: RoleProcess, name: string): Promise<number> {
  return metricValue(await scrapeMetrics(proc), name);
}
