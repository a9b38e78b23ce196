/**
 * The batch-sink loop's ClickHouse side: one attempt at inserting a batch, every table in the
 * batch's order (nothing lands before what it depends on), with the insert metrics; an outage is
 * reported once — `<events>.clickhouse_unavailable` at its first failed attempt,
 * `<events>.clickhouse_recovered` at the first success after it.
 */
import type { ClickHouseClient } from '../clickhouse/index.js';
import { createClickHouse, identifier } from '../clickhouse/index.js';
import type { TallyConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { BatchSinkOptions, SinkBatch } from './batch-target.js';
import { Outage } from './pacing.js';

export class BatchWriter {
  readonly clickhouse: ClickHouseClient;
  private readonly ownsClickHouse: boolean;
  /** The database identifier, validated and quoted; the batch names the tables. */
  private readonly database: string;
  private readonly outage = new Outage();
  private rows = 0;

  constructor(config: TallyConfig, private readonly opts: BatchSinkOptions, private readonly log: Logger) {
    this.database = identifier(config.clickhouse.database);
    this.ownsClickHouse = opts.clickhouse === undefined;
    // The client's per-request error lines become debug logs: the outage is reported here, once.
    this.clickhouse = opts.clickhouse ?? createClickHouse(config, { application: opts.name, log });
  }

  /** Rows ClickHouse acknowledged so far. */
  get rowsInserted(): number {
    return this.rows;
  }

  /** True once ClickHouse acknowledged every table of `batch`; false (counted, reported once per outage) if it refused. */
  async tryInsert(batch: SinkBatch): Promise<boolean> {
    const { metrics, events } = this.opts;
    const inserts = batch.inserts();
    const rows = inserts.reduce((n, t) => n + t.values.length, 0);
    const t0 = process.hrtime.bigint();
    try {
      for (const t of inserts) await this.clickhouse.insert({ table: `${this.database}.${t.table}`, values: t.values, format: 'JSONEachRow', columns: t.columns });
    } catch (err) {
      metrics?.insertFailures.inc();
      metrics?.waitingForClickHouse.set(1);
      const message = err instanceof Error ? err.message : String(err);
      const attempt = this.outage.failed(Date.now());
      if (attempt === 1) this.log.warn({ err: message, rows, records: batch.records }, `${events}.clickhouse_unavailable`);
      else this.log.debug({ err: message, attempt }, `${events}.insert_retry`);
      return false;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    this.rows += rows;
    if (rows > 0) metrics?.insertSeconds.observe(seconds);
    for (const t of inserts) metrics?.rowsInserted.inc({ table: t.table }, t.values.length);
    metrics?.lastInsertTimestamp.set(Date.now() / 1000);
    this.log.debug({ rows, tables: inserts.map((t) => t.table), records: batch.records, ms: Math.round(seconds * 1000) }, `${events}.batch_inserted`);
    this.stopWaiting();
    const ended = this.outage.recovered(Date.now());
    if (ended !== undefined) this.log.info(ended, `${events}.clickhouse_recovered`);
    return true;
  }

  /** No batch waits for ClickHouse any more (it landed, or left the loop without landing). */
  stopWaiting(): void {
    this.opts.metrics?.waitingForClickHouse.set(0);
  }

  /** Closes the client if the sink built it. */
  async close(): Promise<void> {
    if (this.ownsClickHouse) await this.clickhouse.close().catch(() => undefined);
  }
}
