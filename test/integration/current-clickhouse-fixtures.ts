/**
 * Shared by current-clickhouse.test.ts: the two ClickHouses under test as "sides" (tally's config
 * and a client for each), the sinks that fill each from the same topics, the tables as text, and
 * a collector of every difference between the sides' answers, so one run reports them all.
 */
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { createClickHouse, identifier } from '../../server/src/clickhouse/index.js';
import { loadConfig, type TallyConfig } from '../../server/src/config/index.js';
import { createLogger } from '../../server/src/observability/index.js';
import { ClickHouseSink, DeadLetterSink } from '../../server/src/sink/index.js';

/** One ClickHouse under test: the environment and config tally's roles get for it, and a client. */
export interface Side {
  name: string;
  env: NodeJS.ProcessEnv;
  config: TallyConfig;
  ch: ClickHouseClient;
}

export function side(name: string, env: NodeJS.ProcessEnv): Side {
  const config = loadConfig(env);
  return { name, env, config, ch: createClickHouse(config, { log: 'off' }) };
}

export type Sink = ClickHouseSink | DeadLetterSink;

/**
 * `tally sink`'s two loops (counts and dead letters) in this process, into `s`'s ClickHouse.
 * `groupPrefix` gives them consumer groups of their own, so two sides each read every record.
 */
export async function startSinks(s: Side, groupPrefix: string): Promise<Sink[]> {
  const prefix = s.config.groups.sink.slice(0, -'tally-clickhouse-sink'.length);
  const config = { ...s.config, groups: { ...s.config.groups, sink: `${prefix}${groupPrefix}tally-clickhouse-sink` } };
  const log = createLogger(`sink-${s.name}`, 'warn');
  const sinks = [new ClickHouseSink(config, log), new DeadLetterSink(config, log.child({ component: 'dlq-sink' }))];
  await Promise.all(sinks.map((k) => k.start()));
  return sinks;
}

/**
 * What each table must hold alike on both sides, as ClickHouse renders it (TabSeparated): every
 * column but those stamped by the server (inserted_at, applied_at: now()) or at random
 * (billing_statement's rollup_id; final_periods' final_at, the sink's clock). ReplacingMergeTree
 * tables FINAL; immutable ones DISTINCT (a re-insert is identical).
 */
const TABLES: Record<string, { columns: string; from?: string }> = {
  schema_migrations: { columns: 'version, name' },
  impression_counts: { columns: 'window_start, window_end, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, version, final, revised', from: 'FINAL' },
  impression_breakdowns: { columns: 'window_start, window_end, advertiser_id, campaign_id, source_partition, dimension, value, impressions, spend_micros, version', from: 'FINAL' },
  partition_watermarks: { columns: 'source_partition, watermark_ms, max_event_time_ms, updated_at, version', from: 'FINAL' },
  // event_ts as a number: DateTime 0 (no valid ts) is rendered 0000-00-00 00:00:00 by 18.16, 1970-01-01 00:00:00 since; tally reads it with toUInt32.
  dead_letters: { columns: 'reason, detail, source_topic, source_partition, source_offset, dlq_partition, dlq_offset, advertiser_id, toUInt32(event_ts), toUInt32(arrival_period)', from: 'FINAL' },
  billing_ledger: { columns: 'DISTINCT period_start, advertiser_id, campaign_id, source_partition, impressions, spend_micros, duplicates, closed_at' },
  period_closes: { columns: 'DISTINCT period_start, source_partition, closed_at, watermark_ms, ledger_rows, source_topic, source_first_offset, source_close_offset, repartition_topic, repartition_first_offset, repartition_close_offset' },
  billing_late: { columns: 'DISTINCT arrival_period, advertiser_id, original_period, source_partition, events' },
  billing_statement: {
    columns: 'period_start, advertiser_id, campaign_id, impressions, spend_micros, duplicates',
    from: 'WHERE (period_start, rollup_id) IN (SELECT period_start, min(rollup_id) FROM {db}.final_periods GROUP BY period_start)',
  },
  final_periods: { columns: 'DISTINCT period_start, statement_rows' },
  reconciliations: { columns: 'ran_at, from_time, to_time, periods, ledger_rows, differences, detail' },
};

export const TABLE_NAMES = Object.keys(TABLES);

/** A table's rows as ClickHouse renders them, sorted. */
export async function tableText(s: Side, table: string): Promise<string> {
  const db = identifier(s.config.clickhouse.database);
  const t = TABLES[table];
  const columns = t.columns.replace(/^DISTINCT /, '');
  const res = await s.ch.exec({ query: `SELECT ${t.columns} FROM ${db}.${table} ${(t.from ?? '').replaceAll('{db}', db)} ORDER BY ${columns} FORMAT TabSeparated` });
  let text = '';
  for await (const piece of res.stream as AsyncIterable<Buffer>) text += piece.toString('utf8');
  return text;
}

/** JSON that shows BigInt values (as digits with an n). */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

/** An answer for a message: around `at` (where it first differs from another), at most 600 characters. */
function show(text: string, at: number): string {
  const from = Math.max(0, at - 300);
  return `${from > 0 ? `…(${from} chars) ` : ''}${text.slice(from, at + 300)}${at + 300 < text.length ? ` …(${text.length - at - 300} more)` : ''}`;
}

function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

/** Every difference between the sides' answers (or errors), collected; assertNone() fails with all of them. */
export class Differences {
  readonly found: string[] = [];

  constructor(private readonly sides: readonly Side[]) {}

  /** Runs `question` on each side; records a difference unless every side answered the same. */
  async compare<T>(what: string, question: (s: Side) => Promise<T>): Promise<T[]> {
    const outcomes: Array<Outcome<T>> = [];
    for (const s of this.sides) {
      outcomes.push(await question(s).then((value) => ({ ok: true as const, value }), (err: unknown) => ({ ok: false as const, error: err instanceof Error ? err.message : String(err) })));
    }
    const [first, ...rest] = outcomes;
    const same = (o: Outcome<T>) => first.ok && o.ok && isDeepEqual(o.value, first.value);
    if (!rest.every(same)) {
      const texts = outcomes.map((o) => (o.ok ? jsonText(o.value) : `ERROR ${o.error}`));
      const at = Math.min(...texts.slice(1).map((t) => firstDifference(texts[0], t)));
      this.found.push(`${what}:\n${texts.map((t, i) => `  ${this.sides[i].name}: ${show(t, at)}`).join('\n')}`);
    }
    return outcomes.map((o) => (o.ok ? o.value : (undefined as T)));
  }

  assertNone(): void {
    const found = this.found.splice(0);
    assert.equal(found.length, 0, `${found.length} difference(s) between ${this.sides.map((s) => s.name).join(' and ')}:\n${found.join('\n')}`);
  }
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}
