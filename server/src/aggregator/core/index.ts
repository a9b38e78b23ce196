// The aggregation core: pure state and arithmetic, no I/O. The Kafka shell around it (partition-task,
// restore) feeds it impressions and writes out what it drains.
export type {
  Changes, DedupDelta, EvictedWindow, IdHash, ProcessOutcome, WindowRow, WindowSettings,
} from './types.js';
export { hashImpressionId } from './id-hash.js';
export { DedupSet, ID_BYTES } from './dedup-set.js';
export { parseRowKey, rowKey, windowStartOf, type RowKeyParts } from './window.js';
export { PartitionState } from './partition-state.js';
