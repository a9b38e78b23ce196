/**
 * The wire format of the internal repartition topic (`aggregator-repartition`). Produced by the
 * aggregator (a task forwards records read outside their home partition, and sends its source's
 * watermark markers); consumed by the aggregator (the home task: its second input) and by
 * `tally reconcile` (tools/), which follows forwarded copies back to their original record.
 * Partition h carries, in the order each source wrote them:
 *
 *   forwarded impressions   key = impression_id, value = the input record's bytes unchanged,
 *                           header `tally-forwarded-from` = `${sourcePartition}:${sourceOffset}`
 *   watermark markers       key = `marker|${sourcePartition}`, value = MarkerRecord (JSON)
 *
 * A marker follows every record its source forwarded before it (same producer, same partition,
 * same or an earlier transaction), so it tells the home task how far that source's event time has
 * come on this channel. Impression ids cannot contain `|`, so a marker key is never an id.
 */

export const FORWARDED_FROM_HEADER = 'tally-forwarded-from';
const MARKER_PREFIX = 'marker|';

export interface MarkerRecord {
  source_partition: number;
  watermark: number;
  idle: boolean;
  /** The source's read position (next offset of its partition of `impressions`) when it said so. */
  position: number | null;
}

/** What a marker says of its source (the aggregator's InputMark). */
export interface SourceMark {
  watermark: number;
  idle: boolean;
  /** The source's read position (next offset of its partition of `impressions`) when it said so. */
  position: number | null;
}

export function markerKey(source: number): string {
  return `${MARKER_PREFIX}${source}`;
}

export function encodeMarker(source: number, mark: SourceMark): Buffer {
  return Buffer.from(JSON.stringify({ source_partition: source, watermark: mark.watermark, idle: mark.idle, position: mark.position } satisfies MarkerRecord));
}

/** True when a repartition record's key marks it as a watermark marker (cheap: no decoding of forwards). */
export function isMarkerKey(key: Buffer | string | null | undefined): boolean {
  if (key === null || key === undefined) return false;
  const s = typeof key === 'string' ? key : key.length > MARKER_PREFIX.length && key[0] === 0x6d ? key.toString('latin1', 0, MARKER_PREFIX.length) : '';
  return s.startsWith(MARKER_PREFIX);
}

/** The marker a record carries; throws on a value tally did not write. */
export function decodeMarker(value: Buffer | null | undefined): { source: number; mark: SourceMark } {
  const rec = JSON.parse(value?.toString('utf8') ?? 'null') as Partial<MarkerRecord> | null;
  if (rec === null || typeof rec !== 'object' || !Number.isSafeInteger(rec.source_partition) || !Number.isSafeInteger(rec.watermark) || typeof rec.idle !== 'boolean') {
    throw new Error(`not a watermark marker: ${value?.toString('utf8').slice(0, 200)}`);
  }
  const position = Number.isSafeInteger(rec.position) ? rec.position as number : null;
  return { source: rec.source_partition as number, mark: { watermark: rec.watermark as number, idle: rec.idle, position } };
}

/** `${partition}:${offset}` of the input record a forwarded copy came from, if the header is there. */
export function forwardedFrom(headers: ReadonlyArray<Record<string, unknown>> | undefined): { partition: number; offset: number } | null {
  for (const h of headers ?? []) {
    const v = h[FORWARDED_FROM_HEADER];
    if (v === undefined) continue;
    const [p, o] = String(v).split(':').map(Number);
    if (Number.isSafeInteger(p) && Number.isSafeInteger(o)) return { partition: p, offset: o };
  }
  return null;
}
