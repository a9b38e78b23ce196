/**
 * The numbers of a reporting view over the picked range (useDateRange): per campaign, per hour or
 * day for the chart, and in total. From GET /api/v1/counts (ClickHouse), refreshed every 10 s while
 * the range includes now; or, for a view that asks for it, from the live feed when the range is
 * exactly today (the feed holds every window of the UTC day: numbers within a second, no polling).
 */
import { computed, type ComputedRef } from 'vue';
import type { CountsResponse, Maturity } from '../contracts';
import { campaignTotals, windowBuckets, windowStartOf, type CampaignTotals, type PeriodRow } from '../live-aggregates';
import { leastMature } from '../maturity';
import { bucketMsOf, countPeriodRows, countsPath, includesNow, isCurrentDay } from '../range-report';
import { useApiResource } from './useApi';
import { useDateRange } from './useDateRange';
import { useLiveFeed } from './useLiveFeed';

const REFRESH_MS = 10_000;

export interface ReportScope {
  /** null: every advertiser (admin). */
  advertiserId: string | null;
  campaignId?: string;
}

export interface RangeTotals {
  impressions: number;
  spendMicros: bigint;
  duplicates: number;
  maturity: Maturity;
}

/** `scope` undefined: nothing to ask yet (no live snapshot, so no view). */
export function useRangeReport(scope: () => ReportScope | undefined, opts: { liveToday: boolean }) {
  const range = useDateRange();
  const live = useLiveFeed();
  /** The open window's start: what the buckets depend on, instead of every tick of the clock. */
  const windowNow = computed(() => windowStartOf(live.now.value, live.windowMs.value));

  const fromLive = computed(() => opts.liveToday && range.bounds.value !== undefined && isCurrentDay(range.bounds.value, live.now.value));
  const path = computed(() => {
    const s = scope();
    const b = range.bounds.value;
    if (s === undefined || b === undefined || fromLive.value) return null;
    return countsPath({ ...s, from: b.from, to: b.to }, range.granularity.value);
  });
  /** While the range includes now its numbers move: asked again this often. */
  const refreshMs = computed(() => (range.bounds.value && includesNow(range.bounds.value, live.now.value) ? REFRESH_MS : undefined));
  const counts = useApiResource<CountsResponse>(path, { intervalMs: refreshMs });

  const rows: ComputedRef<PeriodRow[]> = computed(() => {
    if (fromLive.value) {
      const campaignId = scope()?.campaignId;
      return campaignId === undefined ? live.rows.value : live.rows.value.filter((r) => r.campaignId === campaignId);
    }
    return countPeriodRows(counts.data.value?.rows ?? []);
  });
  const bucketMs = computed(() => bucketMsOf(range.granularity.value));
  const campaigns = computed<CampaignTotals[]>(() => (range.bounds.value ? campaignTotals(rows.value, range.bounds.value.from) : []));
  const buckets = computed(() => {
    const b = range.bounds.value;
    if (b === undefined) return [];
    return windowBuckets(rows.value, {
      from: b.from, to: b.to, now: windowNow.value, windowMs: live.windowMs.value, bucketMs: bucketMs.value, allAdvertisers: scope()?.advertiserId === null,
    });
  });
  /** /counts' own totals (the range's maturity even without rows); the live campaigns' sum for today. */
  const totals = computed<RangeTotals | undefined>(() => {
    if (!fromLive.value) {
      const t = counts.data.value?.totals;
      return t && { impressions: t.impressions, spendMicros: BigInt(t.spendMicros), duplicates: t.duplicates, maturity: t.maturity };
    }
    return campaigns.value.reduce<RangeTotals>((t, c) => ({
      impressions: t.impressions + c.impressions, spendMicros: t.spendMicros + c.spendMicros,
      duplicates: t.duplicates + c.duplicates, maturity: leastMature(t.maturity, c.maturity),
    }), { impressions: 0, spendMicros: 0n, duplicates: 0, maturity: campaigns.value[0]?.maturity ?? 'live' });
  });

  return {
    range,
    /** Where the numbers come from now. */
    source: computed(() => (fromLive.value ? 'live' : 'clickhouse') as 'live' | 'clickhouse'),
    loading: computed(() => !fromLive.value && path.value !== null && counts.loading.value),
    error: computed(() => (fromLive.value ? undefined : counts.error.value)),
    updatedAt: counts.updatedAt,
    refreshMs,
    campaigns,
    buckets,
    bucketMs,
    totals,
  };
}
