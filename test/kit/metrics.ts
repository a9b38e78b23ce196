/** Reading a role's Prometheus /metrics page. */

/**
 * The value of metric `name` in Prometheus text: its sample, or the sum of its labelled samples,
 * or one label set's when `name` spells it (`x{outcome="committed"}`); NaN when absent (a
 * labelled counter before its first increment), so `> 0` is false and `=== 0` needs it shown.
 */
export function metricValue(text: string, name: string): number {
  let sum = NaN;
  const labelled = name.includes('{');
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || (!labelled && line.startsWith(`${name}{`))) sum = (Number.isNaN(sum) ? 0 : sum) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** GETs a /metrics page and reads `names` from it (NaN for a name it does not show). */
export async function fetchMetrics(url: string, names: readonly string[]): Promise<Record<string, number>> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  const text = await res.text();
  return Object.fromEntries(names.map((name) => [name, metricValue(text, name)]));
}
