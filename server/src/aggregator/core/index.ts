// The aggregation core: pure state and arithmetic, no I/O. The Kafka shell around it (partition-task,
// restore) feeds it impressions and writes out what it drains.
export type {
  BreakdownSettings, Changes, DedupDelta, EvictedWindow, IdHash, InputMark, LateCount, OpenPeriod, PartitionProgress, PeriodClose, PeriodRow,
  ProcessOutcome, RecordOrigin, SourceStatus, TaskInput, WindowSettings,
} from './types.js';
export { PERIOD_MS } from './types.js';
export { PeriodBook, periodOf } from './period-book.js';
export { hashImpressionId } from './id-hash.js';
export { decodeChunk, encodeChunk, ID_BYTES } from './dedup-chunk.js';
export { DedupIndex } from './dedup-index.js';
export { InputWatermarks } from './input-watermarks.js';
export { windowStartOf } from './window.js';
export { PartitionState } from './partition-state.js';
