/**
 * Display formatting. Money arrives as integer micros (millionths of the currency) and is
 * formatted with integer/string math only: no division by 1e6 in floating point, so what the
 * dashboard shows is digit for digit what the billing export says.
 */

const MICROS_PER_UNIT = 1_000_000n;

/** An integer as bigint; throws on a fractional or unsafe number (a bug upstream, never silently rounded). */
export function toBigInt(n: number | bigint): bigint {
  if (typeof n === 'bigint') return n;
  if (!Number.isSafeInteger(n)) throw new RangeError(`not an exact integer: ${n}`);
  return BigInt(n);
}

/** 1234567 → "1,234,567" (thin, locale-independent grouping with commas). */
export function formatInt(n: number | bigint): string {
  const v = toBigInt(n);
  const digits = (v < 0n ? -v : v).toString();
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return v < 0n ? `-${grouped}` : grouped;
}

/**
 * Micros as currency units, exact: 1250 → "0.00125", 12_340_000 → "12.34", 5_000_000 → "5.00".
 * At least `minDecimals` (default 2) fraction digits, at most 6 (micros); trailing zeros beyond
 * the minimum are dropped, never rounded away.
 */
export function formatMicros(micros: number | bigint, minDecimals = 2): string {
  const v = toBigInt(micros);
  const abs = v < 0n ? -v : v;
  const units = abs / MICROS_PER_UNIT;
  let fraction = (abs % MICROS_PER_UNIT).toString().padStart(6, '0');
  while (fraction.length > minDecimals && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  const text = fraction.length > 0 ? `${formatInt(units)}.${fraction}` : formatInt(units);
  return v < 0n ? `-${text}` : text;
}

/**
 * Cost per thousand impressions, in micros, rounded half up to the micro: spend × 1000 / impressions.
 * null when there are no impressions.
 */
export function cpmMicros(spendMicros: number | bigint, impressions: number | bigint): bigint | null {
  const n = toBigInt(impressions);
  if (n <= 0n) return null;
  const scaled = toBigInt(spendMicros) * 1000n;
  return (scaled * 2n + n) / (2n * n);
}

export function formatCpm(spendMicros: number | bigint, impressions: number | bigint): string {
  const cpm = cpmMicros(spendMicros, impressions);
  return cpm === null ? '–' : formatMicros(cpm);
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** Epoch ms → "14:05" (UTC); with seconds → "14:05:30". */
export function formatUtcTime(ms: number, seconds = false): string {
  const d = new Date(ms);
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  return seconds ? `${hm}:${pad2(d.getUTCSeconds())}` : hm;
}

/** Epoch ms → "2025-11-26 14:05 UTC". */
export function formatUtcDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${formatUtcTime(ms)} UTC`;
}

/** Epoch ms → "14:05:30 UTC" on the same UTC day as `now`, else "2025-11-25 14:05 UTC". */
export function formatUtcWhen(ms: number, now: number): string {
  const sameDay = Math.floor(ms / 86_400_000) === Math.floor(now / 86_400_000);
  return sameDay ? `${formatUtcTime(ms, true)} UTC` : formatUtcDateTime(ms);
}

/** The UTC hour starting at `ms` → "2025-11-26 14:00–15:00". */
export function formatUtcHour(ms: number): string {
  return `${formatUtcDateTime(ms).slice(0, -4)}–${formatUtcTime(ms + 3_600_000)}`;
}

/** Epoch ms → "2025-11-26T14:00:00Z" (ISO without zero milliseconds, as the API and the CLI write it). */
export function isoUtc(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}

/** A configured duration, exact (no rounding): 3_630_000 → "1 h 30 s", 90_000 → "1 min 30 s", 250 → "250 ms". */
export function formatSpan(ms: number): string {
  const parts: string[] = [];
  let rest = Math.max(0, Math.round(ms));
  for (const [unit, size] of [['h', 3_600_000], ['min', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n} ${unit}`);
  }
  return parts.length > 0 ? parts.join(' ') : '0 s';
}

/** A duration in ms → "850 ms", "12.3 s", "4 min 05 s", "2 h 10 min". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  const abs = Math.max(0, Math.round(ms));
  if (abs < 1000) return `${abs} ms`;
  if (abs < 60_000) return `${(abs / 1000).toFixed(1)} s`;
  const s = Math.floor(abs / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad2(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad2(Math.floor((s % 3600) / 60))} min`;
}

/** A window size in ms → "60 s", "5 min", "1 h". */
export function formatWindowSize(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0 && ms >= 120_000) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

/** A rate with one decimal below 100, grouped integers above: 12.5, 1,234. */
export function formatRate(perSec: number): string {
  if (!Number.isFinite(perSec)) return '–';
  if (perSec < 100) return (Math.round(perSec * 10) / 10).toFixed(1);
  return formatInt(Math.round(perSec));
}

/**
 * Micros split for display: `main` with two decimals and `micro`, the remaining four digits, so a
 * view can show "357.15" prominently and "3790" small, exact and aligned. main + micro is the
 * full six-decimal value.
 */
export function formatMicrosParts(micros: number | bigint): { main: string; micro: string } {
  const full = formatMicros(micros, 6);
  return { main: full.slice(0, -4), micro: full.slice(-4) };
}
