/**
 * Rolls final periods up into `billing_statement` (the ledger summed over partitions), in order, so
 * statements and hourly/daily counts of a closed month read one row per (hour, campaign) instead of
 * one per partition. Run by the sink after it inserted period closes (and at start). Each roll-up
 * writes its rows under a fresh random rollup_id, then names it in `final_periods`: a roll-up cut
 * short (crash between the inserts) is never named, so never read; a period rolled twice (two
 * sinks, a retry) has two complete identical sets, and readers take the lowest id listed.
 */
import crypto from 'node:crypto';
import type { ClickHouseClient } from '../clickhouse/index.js';
import { dateTimeLiteral, identifier, queryRows, uintLiteral } from '../clickhouse/index.js';
import { HOUR_MS, queryFrontier } from '../ledger/index.js';
import type { Logger } from '../observability/index.js';

/** Most periods rolled up in one call (a sink catching up on a long history does it in steps). */
const MAX_PERIODS_PER_CALL = 24 * 7;

export async function rollUpFinalPeriods(ch: ClickHouseClient, database: string, partitions: number, now: number): Promise<number[]> {
  const db = identifier(database);
  const frontier = await queryFrontier(ch, database, partitions);
  if (frontier.finalBefore === null) return [];
  let from: number;
  if (frontier.rolledBefore !== null) {
    from = frontier.rolledBefore;
  } else {
    const [first] = await queryRows<{ s: string | number; n: string | number }>(ch,
      `SELECT toUInt32(min(period_start)) AS s, count() AS n FROM ${db}.period_closes`);
    if (first === undefined || Number(first.n) === 0) return [];
    from = Number(first.s) * 1000;
  }
  const rolled: number[] = [];
  for (let p = from; p < frontier.finalBefore && rolled.length < MAX_PERIODS_PER_CALL; p += HOUR_MS) {
    const rollupId = uintLiteral(crypto.randomInt(2 ** 47) + 1);
    await ch.command({
      query: `INSERT INTO ${db}.billing_statement (period_start, advertiser_id, campaign_id, impressions, spend_micros, duplicates, rollup_id) `
        + `SELECT period_start, advertiser_id, campaign_id, sum(i), sum(s), sum(d), ${rollupId} FROM (`
        + 'SELECT period_start, advertiser_id, campaign_id, any(impressions) AS i, any(spend_micros) AS s, any(duplicates) AS d '
        + `FROM ${db}.billing_ledger WHERE period_start = ${dateTimeLiteral(p)} GROUP BY period_start, advertiser_id, campaign_id, source_partition) `
        + 'GROUP BY period_start, advertiser_id, campaign_id',
    });
    const [count] = await queryRows<{ n: string | number }>(ch,
      `SELECT count() AS n FROM ${db}.billing_statement WHERE period_start = ${dateTimeLiteral(p)} AND rollup_id = ${rollupId}`);
    await ch.command({
      query: `INSERT INTO ${db}.final_periods (period_start, final_at, statement_rows, rollup_id) `
        + `VALUES (${dateTimeLiteral(p)}, ${dateTimeLiteral(now)}, ${uintLiteral(Number(count?.n ?? 0))}, ${rollupId})`,
    });
    rolled.push(p);
  }
  return rolled;
}

/** Runs rollUpFinalPeriods in the background, one run at a time: a request during a run makes one more run after it. */
export class FinalPeriodRoller {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(private readonly ch: ClickHouseClient, private readonly database: string, private readonly partitions: number, private readonly log: Logger) {}

  request(): void {
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = rollUpFinalPeriods(this.ch, this.database, this.partitions, Date.now())
      .then((periods) => {
        if (periods.length > 0) this.log.info({ periods: periods.map((p) => new Date(p).toISOString()) }, 'sink.periods_final');
      }, (err: unknown) => this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'sink.rollup_failed'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.request();
        }
      });
  }

  /** Resolves once no run is in progress or requested. */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }
}
