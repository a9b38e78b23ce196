export {
  type GroundTruth, type TruthRow, type TruthCounts, type TruthPhase, type CountedImpression,
  mergeTruth, readTruth, writeTruth, parseTruth, truthTotals, truthRowKey, compareTruthRows, emptyDeadLetters, truthRowsOf,
} from './ground-truth.js';
export {
  type TruthBreakdowns, type TruthValueCounts, type DimensionValues,
  dimensionValuesOf, mergeBreakdowns,
} from './truth-breakdowns.js';
export {
  type GeneratorOptions, type PlanContext, type EventPlan, type PlannedRecord, type RecordKind, type KeyMode, type KeyModeOption, type BadKind,
  buildEventPlan, resolveGeneratorOptions, planContext, createRng, DEFAULT_GENERATOR_OPTIONS, BAD_KINDS, KEY_MODE_OPTIONS, TOO_LARGE_BYTES,
} from './event-generator.js';
export {
  type GenerateOptions, type GenerateProgress, type GenerateProgressFn, type ProduceOptions,
  generate, producePlan, randomSeed,
} from './generate.js';
export {
  type VerifyOptions, type VerifyResult, type VerifyDifference, type VerifyTotals, type VerifyProgress, type Comparison, type ActualBreakdowns,
  verify, compareWithTruth, formatVerifyReport,
} from './verify.js';
export {
  type ActualRow, type ActualBreakdownRow,
  queryActualRows, queryActualBreakdowns, actualRowsSql, actualBreakdownsSql, likePrefix,
} from './verify-sql.js';
export {
  type BreakdownCheck, type BreakdownDifference, type BreakdownDifferenceKind,
  compareBreakdowns, truthDimensions,
} from './breakdown-comparison.js';
export {
  type ReadToEndOptions, type ReadToEndResult, type DeadLetterDiff,
  readDeadLetters, readTopicToEnd, diffDeadLetters,
} from './dlq-reader.js';
export { type WatermarkGateOptions, awaitWatermark, lowestWatermark, publishedWatermarks } from './watermark-gate.js';
export { type ReconcileResult, type ReconcileDifference, reconcile, recordReconciliation, formatDifference } from './reconcile.js';
