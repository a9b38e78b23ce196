/** What one throughput run of a contender (tally, kcat or a peer) reports to the bench table. */
export interface ContenderResult {
  seconds: number;
  eventsPerSec: number;
  /** Impressions it counted: the unique ones for tally and Kafka Streams, every record for at-least-once peers. */
  counted: number;
  duplicates: number;
  note: string;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
