/**
 * The random parts of an event plan, all drawn from one seeded PRNG in the order buildEventPlan
 * asks for them (so a seed always gives the same plan): valid impressions, malformed records of
 * each BadKind, and how each record is keyed and partitioned.
 */
import { homePartition } from '../impression/index.js';
import { TOO_LARGE_BYTES, type BadKind, type GeneratorOptions, type KeyMode, type PlanContext } from './generator-options.js';
import { dimensionValuesOf, type DimensionValues } from './truth-breakdowns.js';

/** Values drawn with weights, so breakdowns look like real traffic: a few values carry most of it. */
class WeightedValues {
  private readonly cumulative: number[] = [];

  constructor(readonly values: readonly string[], weights: readonly number[]) {
    const total = weights.reduce((s, w) => s + w, 0);
    let sum = 0;
    for (const w of weights) this.cumulative.push((sum += w) / total);
  }

  /** The value for a uniform draw u in [0, 1). */
  pick(u: number): string {
    const i = this.cumulative.findIndex((c) => u < c);
    return this.values[i < 0 ? this.values.length - 1 : i];
  }
}

/** Zipf-like weights 1, 1/2, 1/3, …: the first value is the most common. */
const zipf = (n: number): number[] => Array.from({ length: n }, (_, i) => 1 / (i + 1));

const CREATIVES = [
  'spring-sale-300x250', 'brand-story-15s', 'spring-sale-728x90', 'retarget-carousel', 'app-install-320x480', 'spring-sale-320x50',
  'native-article-a', 'brand-story-30s', 'holiday-banner-300x600', 'native-article-b', 'product-grid-970x250', 'countdown-300x250',
];
const PUBLISHERS = [
  'news.example', 'sports.example', 'weather.example', 'video.example', 'recipes.example', 'games.example', 'finance.example',
  'travel.example', 'music.example', 'tech.example', 'autos.example', 'health.example', 'fashion.example', 'home.example',
  'science.example', 'jobs.example', 'realestate.example', 'pets.example', 'books.example', 'kids.example',
];
const DIMENSION_VALUES = {
  creative_id: new WeightedValues(CREATIVES, zipf(CREATIVES.length)),
  publisher_id: new WeightedValues(PUBLISHERS, zipf(PUBLISHERS.length)),
  country: new WeightedValues(['US', 'DE', 'GB', 'FR', 'JP', 'BR', 'IN', 'ES'], [35, 15, 12, 10, 8, 8, 7, 5]),
  device: new WeightedValues(['mobile', 'desktop', 'tablet', 'ctv'], [60, 30, 7, 3]),
};

/** mulberry32: a small, fast, seedable PRNG (uniform [0, 1)). */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A valid impression: its Kafka value and the fields the ground truth counts. */
export interface Impression {
  id: string;
  ts: number;
  advertiserId: string;
  campaignId: string;
  costMicros: number;
  /** What the aggregator counts it under in each dimension (from the fields of `value`). */
  dimensionValues: DimensionValues;
  value: string;
}

/** How a record is keyed and partitioned. */
export interface RecordRoute {
  /** Kafka key: the impression id, or null (nokey mode). */
  key: string | null;
  /** null: the producer's partitioner picks (murmur2 of the key = the home partition). */
  partition: number | null;
  keyMode: KeyMode;
}

export class EventFactory {
  private readonly rng: () => number;
  /** Part of every id, so runs with different seeds never share one. */
  private readonly tag: string;
  private readonly advertiserIds: string[];
  /** How far in the future a future_timestamp record is: beyond any allowed clock skew. */
  private readonly futureAhead: number;

  constructor(private readonly o: GeneratorOptions, private readonly ctx: PlanContext) {
    this.rng = createRng(o.seed);
    this.tag = o.seed.toString(36);
    this.advertiserIds = Array.from({ length: o.advertisers }, (_, a) => `${o.idPrefix}adv-${a + 1}`);
    this.futureAhead = Math.max(86_400_000, ctx.maxClockSkewMs + 86_400_000);
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.rng() * n);
  }

  /** A uniform integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** The impression id `<id prefix><seed tag>-<suffix>`. */
  id(suffix: string): string {
    return `${this.o.idPrefix}${this.tag}-${suffix}`;
  }

  /** The key mode of the next record: the one asked for, or a random one in mixed mode. */
  pickMode(): KeyMode {
    if (this.o.keyMode !== 'mixed') return this.o.keyMode;
    return (['home', 'foreign', 'nokey'] as const)[this.int(3)];
  }

  route(id: string | null, mode: KeyMode): RecordRoute {
    const { partitions } = this.ctx;
    if (mode === 'home' && id !== null) return { key: id, partition: null, keyMode: 'home' };
    if (mode === 'foreign' && id !== null) {
      // Another partitioner: any partition but the home one (when there is another).
      if (partitions === 1) return { key: id, partition: 0, keyMode: 'foreign' };
      const home = homePartition(id, partitions);
      let p = this.int(partitions - 1);
      if (p >= home) p++;
      return { key: id, partition: p, keyMode: 'foreign' };
    }
    return { key: null, partition: this.int(partitions), keyMode: 'nokey' };
  }

  impression(id: string, ts: number): Impression {
    const a = this.int(this.o.advertisers);
    const advertiserId = this.advertiserIds[a];
    const campaignId = `${advertiserId}-cmp-${1 + this.int(this.o.campaigns)}`;
    const costMicros = this.between(100, 5000);
    const body: Record<string, unknown> = { impression_id: id, ts, advertiser_id: advertiserId, campaign_id: campaignId, cost_micros: costMicros };
    // Each dimension present in 80 % of events (the rest count as `unknown`).
    for (const [dimension, values] of Object.entries(DIMENSION_VALUES)) {
      if (this.rng() < 0.8) body[dimension] = values.pick(this.rng());
    }
    return { id, ts, advertiserId, campaignId, costMicros, dimensionValues: dimensionValuesOf(body), value: JSON.stringify(body) };
  }

  /** The n-th malformed record, of `kind`, at event time `ts`. */
  badRecord(n: number, kind: BadKind, ts: number): { id: string; value: string } {
    const id = this.id(`B${n}`);
    const b: Record<string, unknown> = {
      impression_id: id, ts, advertiser_id: this.advertiserIds[this.int(this.o.advertisers)],
      campaign_id: `${this.advertiserIds[0]}-cmp-1`, cost_micros: this.between(100, 5000),
    };
    switch (kind) {
      case 'bad_json': return { id, value: '{not json' };
      case 'not_object': return { id, value: '[1,2]' };
      case 'missing_field': delete b.campaign_id; break;
      case 'bad_type': b.advertiser_id = 42; break;
      case 'bad_id': b.advertiser_id = 'adv 1!'; break;
      case 'bad_timestamp': b.ts = 'yesterday'; break;
      case 'bad_cost': b.cost_micros = -5; break;
      case 'too_large': {
        const base = JSON.stringify(b).length;
        b.padding = 'x'.repeat(TOO_LARGE_BYTES - base);
        break;
      }
      case 'future_timestamp': b.ts = ts + this.futureAhead; break;
    }
    return { id, value: JSON.stringify(b) };
  }
}
