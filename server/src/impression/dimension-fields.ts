import { DIMENSIONS, type Dimension } from '../contracts/dimensions.js';

/**
 * Which of the event's dimension fields a parse reads, compiled once: the scan compares a key's
 * bytes with these, the JSON path reads them by name. A parse without them (ingest validation, the
 * dead-letter sink) reads none and allocates nothing for them.
 */
export interface DimensionFields {
  readonly dimensions: readonly Dimension[];
  readonly keys: readonly Uint8Array[];
}

export function dimensionFields(dimensions: readonly Dimension[]): DimensionFields {
  for (const d of dimensions) if (!(DIMENSIONS as readonly string[]).includes(d)) throw new RangeError(`not a dimension: ${d}`);
  if (new Set(dimensions).size !== dimensions.length) throw new RangeError(`a dimension named twice: ${dimensions.join(',')}`);
  return { dimensions: [...dimensions], keys: dimensions.map((d) => Buffer.from(d)) };
}

export const NO_DIMENSIONS: DimensionFields = dimensionFields([]);

/** Shared by every impression parsed without dimensions. */
export const NO_DIMENSION_VALUES: readonly string[] = Object.freeze([]);
