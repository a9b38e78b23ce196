// The impression contract: what a valid event is, and which partition owns it.
export type { Impression, ParseResult } from './types.js';
export { MAX_COST_MICROS, MAX_EVENT_BYTES, parseImpression } from './parse-impression.js';
export { dimensionFields, NO_DIMENSIONS, type DimensionFields } from './dimension-fields.js';
export { homePartition, murmur2 } from './home-partition.js';
