/**
 * Tumbling event-time windows and the dedup id of an output row. The row key is the compacted
 * topic's key and ClickHouse's ReplacingMergeTree key, so its format is part of the contract.
 */

/** Start of the tumbling window holding `ts`: aligned to multiples of windowMs since the epoch. */
export function windowStartOf(ts: number, windowMs: number): number {
  // Remainder arithmetic instead of Math.floor(ts / windowMs): exact for every integer ms, and the
  // double modulo keeps it a floor for negative ts too (never expected: the contract says ts > 0).
  const r = ts % windowMs;
  return r < 0 ? ts - r - windowMs : ts - r;
}

/** The row's dedup id: `${windowStart}|${advertiserId}|${campaignId}|${sourcePartition}`; '|' cannot occur in ids. */
export function rowKey(windowStart: number, advertiserId: string, campaignId: string, sourcePartition: number): string {
  return `${windowStart}|${advertiserId}|${campaignId}|${sourcePartition}`;
}

export interface RowKeyParts {
  windowStart: number;
  advertiserId: string;
  campaignId: string;
  sourcePartition: number;
}

// Number() alone would accept ' 12', '1e3' or '0x10', which rowKey never writes.
const INTEGER = /^-?\d+$/;
const PARTITION = /^\d+$/;

/** Inverse of rowKey; throws on anything rowKey cannot have produced (e.g. the `watermark|p` key). */
export function parseRowKey(key: string): RowKeyParts {
  const parts = key.split('|');
  if (parts.length !== 4) throw new Error(`not a row key: ${key}`);
  const [start, advertiserId, campaignId, partition] = parts;
  const windowStart = Number(start);
  const sourcePartition = Number(partition);
  if (!INTEGER.test(start) || !Number.isSafeInteger(windowStart) || advertiserId === '' || campaignId === ''
    || !PARTITION.test(partition) || !Number.isSafeInteger(sourcePartition)) {
    throw new Error(`not a row key: ${key}`);
  }
  return { windowStart, advertiserId, campaignId, sourcePartition };
}
