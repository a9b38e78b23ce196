/**
 * How far the billing ledger has come, as the API and the dashboard show it (written by
 * server/src/ledger, served by api/ and live/, read by web/). Times are epoch ms.
 */
import type { Maturity } from './maturity.js';

/** One billing period (UTC hour). */
export interface PeriodStatus {
  periodStart: number;
  maturity: Maturity;
  /** Partitions that closed it (a partition's close of a later period counts: it held nothing of this one). */
  closedPartitions: number;
  /** When the last partition closed it; null while not final. Never changes once set. */
  finalAt: number | null;
  /**
   * Not final yet: when it should be, if event time keeps pace with the clock from here (now + how
   * far the slowest partition's watermark still has to go). Null when final, or while some
   * partition has published no watermark.
   */
  expectedFinalAt: number | null;
}

/** One `tally reconcile` run. */
export interface ReconciliationRun {
  ranAt: number;
  /** The range it checked, [from, to). */
  from: number;
  to: number;
  /** Final periods and ledger rows recomputed from Kafka. */
  periods: number;
  ledgerRows: number;
  /** Rows that differed (0: the ledger matched Kafka). */
  differences: number;
  /** The first differences, one per line (empty when none). */
  detail: string;
}
