/**
 * The date range a reporting view shows, kept in the URL (`?range=last7`, or
 * `?range=custom&from=…&to=…`, and `&by=hour|day` for the charts) so a reload, the back button
 * and a drill-down link keep it. Presets follow the server's clock: at midnight UTC "today" moves.
 */
import { computed } from 'vue';
import { useRoute, useRouter, type LocationQuery } from 'vue-router';
import {
  checkRange, dayStartMs, defaultGranularity, rangeBounds, rangeFromQuery, rangeQuery, utcDay,
  type ChartGranularity, type RangePreset,
} from '../date-range';
import { useClock } from './useClock';

/** The query keys this composable owns. */
const KEYS = ['range', 'from', 'to', 'by'] as const;

export function useDateRange() {
  const route = useRoute();
  const router = useRouter();
  const { now } = useClock();

  // The day only: the range is recomputed at midnight UTC, not at every tick of the clock.
  const today = computed(() => utcDay(now.value));
  const choice = computed(() => rangeFromQuery(route.query, dayStartMs(today.value) ?? now.value));
  /** Why the picked days cannot be asked for (custom days), or null. */
  const problem = computed(() => checkRange(choice.value));
  /** [from, to) of the range; undefined while the picked days are not a valid range. */
  const bounds = computed(() => (problem.value === null ? rangeBounds(choice.value) : undefined));
  const granularity = computed<ChartGranularity>(() => {
    const by = route.query.by;
    return by === 'hour' || by === 'day' ? by : defaultGranularity(choice.value);
  });

  /** This view's range keys of the query, for links to another reporting view. */
  const linkQuery = computed<LocationQuery>(() => {
    const q: LocationQuery = {};
    for (const k of KEYS) if (route.query[k] !== undefined) q[k] = route.query[k];
    return q;
  });

  function replaceRange(next: Record<string, string>): void {
    const rest: LocationQuery = { ...route.query };
    for (const k of KEYS) delete rest[k];
    void router.replace({ query: { ...rest, ...next } });
  }

  /** A preset; custom starts from the days shown now. A new range gets its own default granularity. */
  function pickPreset(preset: RangePreset): void {
    replaceRange(rangeQuery({ ...choice.value, preset }));
  }

  function pickDays(fromDay: string, toDay: string): void {
    replaceRange({ ...rangeQuery({ preset: 'custom', fromDay, toDay }), ...(route.query.by ? { by: String(route.query.by) } : {}) });
  }

  function pickGranularity(by: ChartGranularity): void {
    replaceRange({ ...rangeQuery(choice.value), by });
  }

  return { today, choice, problem, bounds, granularity, linkQuery, pickPreset, pickDays, pickGranularity };
}
