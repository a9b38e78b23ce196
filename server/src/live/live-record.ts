/**
 * Decoding of `impression-counts` values for the live feed, pure: window rows and watermark
 * records checked field by field (a record tally did not write is skipped, never trusted), and
 * tombstones recognised as such so the caller can ignore them: a tombstone only tells that the
 * aggregator evicted the window from its state (≈ 1 h after close); the counts stay valid and
 * ClickHouse keeps the row.
 */
import { checkCountRecord, decodeWindowRow } from '../contracts/count-record.js';
import type { LiveRowInput } from './live-state.js';

export type LiveRecord =
  | { kind: 'window'; row: LiveRowInput }
  | { kind: 'watermark'; partition: number; watermark: number; emittedAt: number }
  /** A billing period closed in a partition: its windows are final for good (their rows go, their counts stay). */
  | { kind: 'period_close'; partition: number; periodEnd: number }
  | { kind: 'tombstone' }
  | { kind: 'poison'; reason: string };

export function decodeLiveRecord(value: Buffer | null | undefined): LiveRecord {
  const checked = checkCountRecord(value);
  if (checked.kind === 'tombstone' || checked.kind === 'poison') return checked;
  if (checked.kind === 'period_close') return { kind: 'period_close', partition: checked.record.source_partition, periodEnd: checked.record.period_end };
  if (checked.kind === 'watermark') {
    const rec = checked.record;
    return { kind: 'watermark', partition: rec.source_partition, watermark: rec.watermark, emittedAt: rec.emitted_at };
  }
  // The feed derives finality from the watermarks; the aggregator's flags stay out of its rows, and
  // so do the breakdowns (the dashboard reads them from the API).
  const { final: _final, revised: _revised, ...row } = decodeWindowRow({ ...checked.record, breakdowns: undefined });
  return { kind: 'window', row };
}
