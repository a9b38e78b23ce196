// The billing ledger's reads: finality, rows by maturity, late events by arrival, lineage.
// Written by the sink (server/src/sink) from the aggregator's period closes.
export {
  frontierOf, frontierSql, maturityOf, periodRowsSql, periodSourcesSql, rolledRowsSql, queryFinalAt, queryFrontier, queryLateUnbillable, queryLineage, toPeriodRow,
  lateUnbillableSql, lineageSql, finalAtSql, HOUR_MS,
  type Frontier, type LateUnbillable, type Lineage, type PeriodQuery, type PeriodRow,
} from './ledger-reads.js';
export {
  periodClosesSql, periodTimeline, queryPeriodCloses, type PartitionClose, type TimelineInput,
} from './period-timeline.js';
export { lastReconciliationSql, queryLastReconciliation } from './reconciliations.js';
