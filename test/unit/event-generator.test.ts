import assert from 'node:assert/strict';
import { homePartition, parseImpression } from '../../server/src/impression/index.js';
import {
  BAD_KINDS, buildEventPlan, compareWithTruth, mergeTruth, parseTruth,
  type EventPlan, type GeneratorOptions, type PlanContext, type PlannedRecord,
} from '../../server/src/tools/index.js';

const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const NOW = Date.UTC(2025, 10, 26, 12, 0, 0, 0);
const ctx: PlanContext = {
  partitions: 8, windowMs: 60_000, outOfOrdernessMs: 5_000, allowedLatenessMs: 30_000,
  dedupHorizonMs: 3_600_000, maxClockSkewMs: 300_000, now: NOW,
};

function plan(opts: Partial<GeneratorOptions> = {}, c: PlanContext = ctx): EventPlan {
  return buildEventPlan({ count: 2000, idPrefix: 'ut-', seed: 42, ...opts }, c);
}

interface Body {
  impression_id: string;
  ts: number;
  advertiser_id: string;
  campaign_id: string;
  cost_micros: number;
  [k: string]: unknown;
}

const counted = (r: PlannedRecord) => r.reason === null;
const body = (r: PlannedRecord) => JSON.parse(r.value) as Body;

/** The truth recomputed independently from the records: first copy of each id counts. */
function recount(p: EventPlan): Map<string, { impressions: number; spendMicros: number }> {
  const seen = new Map<string, string>();
  const rows = new Map<string, { impressions: number; spendMicros: number }>();
  for (const r of p.records.filter(counted)) {
    const b = body(r);
    const prev = seen.get(b.impression_id);
    if (prev !== undefined) {
      assert.equal(r.value, prev, `a copy of ${b.impression_id} differs from its first copy`);
      continue;
    }
    seen.set(b.impression_id, r.value);
    const k = `${Math.floor(b.ts / ctx.windowMs) * ctx.windowMs}|${b.advertiser_id}|${b.campaign_id}`;
    const row = rows.get(k) ?? { impressions: 0, spendMicros: 0 };
    row.impressions++;
    row.spendMicros += b.cost_micros;
    rows.set(k, row);
  }
  return rows;
}

describe('event generator (plan builder)', () => {
  it('is deterministic by seed', () => {
    assert.deepEqual(plan(), plan());
    const other = plan({ seed: 43 });
    assert.notDeepEqual(other.records.map((r) => r.value), plan().records.map((r) => r.value));
  });

  it('respects the duplicate ratio and sends late retries at the end', () => {
    const p = plan({ duplicates: 0.1, lateRetryRatio: 0.3 });
    const dups = p.records.filter((r) => r.kind === 'duplicate');
    const retries = p.records.filter((r) => r.kind === 'late_retry');
    assert.equal(dups.length + retries.length, 200);
    assert.equal(retries.length, 60);
    assert.equal(p.truth.counts.duplicatesSent, 200);
    // Soon duplicates are in the main part, after their original, within a few hundred records.
    const firstAt = new Map<string, number>();
    p.records.forEach((r, i) => {
      if (r.kind === 'original') firstAt.set(body(r).impression_id, i);
      if (r.kind === 'duplicate') {
        const orig = firstAt.get(body(r).impression_id);
        assert.ok(orig !== undefined && orig < i && i - orig <= 400 && i < p.mainCount, `duplicate at ${i}`);
      }
    });
    // Late retries come after every main record and repeat an original byte for byte.
    const originals = new Set(p.records.filter((r) => r.kind === 'original').map((r) => r.value));
    p.records.forEach((r, i) => {
      if (r.kind === 'late_retry') {
        assert.ok(i >= p.mainCount);
        assert.ok(originals.has(r.value));
      }
    });
    assert.equal(plan({ duplicates: 0 }).truth.counts.duplicatesSent, 0);
  });

  it('counts only unique valid impressions in the truth', () => {
    const p = plan({ lateWithinHorizon: 25, tooLate: 7, bad: 18 });
    const rows = recount(p);
    assert.equal(p.truth.rows.length, rows.size);
    for (const r of p.truth.rows) {
      assert.deepEqual(rows.get(`${r.windowStart}|${r.advertiserId}|${r.campaignId}`), { impressions: r.impressions, spendMicros: r.spendMicros });
    }
    const unique = p.truth.rows.reduce((s, r) => s + r.impressions, 0);
    assert.equal(unique, p.truth.counts.unique);
    assert.equal(unique, 2000 + 25);
    assert.equal(p.truth.counts.sent, p.records.length);
    assert.equal(p.truth.counts.valid, p.records.filter((r) => r.reason === null || r.reason === 'too_late').length);
    assert.equal(p.truth.counts.lateWithinHorizon, 25);
    // Sorted rows, windows aligned, integer spend in range.
    for (let i = 1; i < p.truth.rows.length; i++) {
      const a = p.truth.rows[i - 1];
      const b = p.truth.rows[i];
      assert.ok(a.windowStart < b.windowStart || (a.windowStart === b.windowStart && `${a.advertiserId}|${a.campaignId}` < `${b.advertiserId}|${b.campaignId}`));
    }
    for (const r of p.truth.rows) {
      assert.equal(r.windowStart % ctx.windowMs, 0);
      assert.ok(r.spendMicros >= 100 * r.impressions && r.spendMicros <= 5000 * r.impressions);
    }
  });

  it('builds events valid per the contract, spread over several windows', () => {
    const p = plan({ advertisers: 3, campaigns: 4 });
    const advertisers = new Set<string>();
    const campaigns = new Set<string>();
    const windows = new Set<number>();
    for (const r of p.records.filter(counted)) {
      const b = body(r);
      for (const id of [b.impression_id, b.advertiser_id, b.campaign_id]) assert.match(id, ID);
      assert.ok(b.impression_id.startsWith('ut-') && b.advertiser_id.startsWith('ut-adv-'));
      assert.ok(b.campaign_id.startsWith(`${b.advertiser_id}-cmp-`));
      assert.ok(Number.isSafeInteger(b.ts) && b.ts <= NOW);
      assert.ok(Number.isSafeInteger(b.cost_micros) && b.cost_micros >= 100 && b.cost_micros <= 5000);
      assert.equal(r.key === null ? r.keyMode : r.key, r.key === null ? 'nokey' : b.impression_id);
      advertisers.add(b.advertiser_id);
      campaigns.add(b.campaign_id);
      windows.add(Math.floor(b.ts / ctx.windowMs));
    }
    assert.equal(advertisers.size, 3);
    assert.equal(campaigns.size, 12);
    assert.ok(windows.size >= 5, `${windows.size} windows`);
    // Out of order within the jitter, in order beyond it.
    const ts = p.records.slice(0, p.mainCount).filter((r) => r.kind === 'original').map((r) => body(r).ts);
    let inversions = 0;
    for (let i = 1; i < ts.length; i++) {
      if (ts[i] < ts[i - 1]) inversions++;
      assert.ok(ts[i] > ts[i - 1] - 2_000 - 1);
    }
    assert.ok(inversions > 0);
  });

  it('includes every malformed kind, each with its defect', () => {
    const p = plan({ bad: 18 });
    const bad = p.records.filter((r) => r.kind === 'bad');
    assert.equal(bad.length, 18);
    for (const kind of BAD_KINDS) assert.equal(p.truth.deadLetters[kind], 2, kind);
    assert.equal(BAD_KINDS.length, 9);
    assert.ok(!(BAD_KINDS as readonly string[]).includes('too_late'));
    for (const r of bad) {
      const v = r.value;
      switch (r.reason) {
        case 'bad_json': assert.throws(() => JSON.parse(v)); break;
        case 'not_object': assert.ok(Array.isArray(JSON.parse(v))); break;
        case 'missing_field': assert.equal(body(r).campaign_id, undefined); break;
        case 'bad_type': assert.equal(body(r).advertiser_id, 42); break;
        case 'bad_id': assert.doesNotMatch(body(r).advertiser_id, ID); break;
        case 'bad_timestamp': assert.equal(body(r).ts, 'yesterday'); break;
        case 'bad_cost': assert.equal(body(r).cost_micros, -5); break;
        case 'too_large': assert.ok(Buffer.byteLength(v) > 16_384); break;
        case 'future_timestamp': assert.ok(body(r).ts > NOW + ctx.maxClockSkewMs + 3_600_000); break;
        default: assert.fail(`unexpected reason ${r.reason}`);
      }
    }
  });

  it('gets the reason it is planned for from the contract parser', () => {
    const p = plan({ bad: 27, tooLate: 3, lateWithinHorizon: 3 });
    for (const r of p.records) {
      const res = parseImpression(Buffer.from(r.value));
      if (r.reason === null || r.reason === 'too_late' || r.reason === 'future_timestamp') {
        // Valid per the contract; too_late and future_timestamp are the aggregator's clock decisions.
        assert.ok(res.ok, `${r.kind} ${r.reason}: ${res.ok ? '' : res.detail}`);
        const b = body(r);
        assert.deepEqual(res.impression, {
          impressionId: b.impression_id, ts: b.ts, advertiserId: b.advertiser_id, campaignId: b.campaign_id, costMicros: b.cost_micros,
        });
      } else {
        assert.ok(!res.ok && res.reason === r.reason, `${r.reason}: parsed as ${res.ok ? 'ok' : res.reason}`);
      }
    }
  });

  it('dead-letters too-late impressions instead of counting them; late and too-late come last, with the watermark that makes them so', () => {
    const p = plan({ tooLate: 6, lateWithinHorizon: 4 });
    assert.equal(p.truth.deadLetters.too_late, 6);
    const tooLate = p.records.filter((r) => r.kind === 'too_late');
    assert.equal(tooLate.length, 6);
    assert.deepEqual(p.records.slice(p.lateFrom).map((r) => r.kind), ['late_within_horizon', 'late_within_horizon', 'late_within_horizon', 'late_within_horizon', ...tooLate.map(() => 'too_late')], 'the end of the tail');
    for (const r of p.records.slice(p.lateFrom, p.lateFrom + 4)) {
      const w = Math.floor(body(r).ts / ctx.windowMs) * ctx.windowMs;
      assert.ok(p.lateWatermark !== null && w + ctx.windowMs + ctx.allowedLatenessMs <= p.lateWatermark, 'late at that watermark');
    }
    const countedIds = new Set(p.records.filter(counted).map((r) => body(r).impression_id));
    const retention = ctx.windowMs + ctx.allowedLatenessMs + ctx.dedupHorizonMs;
    for (const r of tooLate) {
      const b = body(r);
      assert.ok(!countedIds.has(b.impression_id));
      assert.ok(NOW - b.ts >= 3 * 3_600_000, 'about 3 h old');
      const w = Math.floor(b.ts / ctx.windowMs) * ctx.windowMs;
      assert.ok(!p.truth.rows.some((row) => row.windowStart === w), 'its window is not in the truth');
      assert.ok(p.lateWatermark !== null && w + retention <= p.lateWatermark, 'too late at that watermark');
    }
    assert.ok(p.lateWatermark !== null && p.lateWatermark < NOW - 5 * 60_000, 'a watermark the main part reaches');
    assert.equal(plan({ tooLate: 0, lateWithinHorizon: 0 }).lateWatermark, null);
    const late = p.records.filter((r) => r.kind === 'late_within_horizon').map((r) => NOW - body(r).ts);
    assert.ok(late.every((age) => age >= 10 * 60_000 && age <= 30 * 60_000));
  });

  it('routes records by key mode; duplicates may take another mode than their original', () => {
    for (const mode of ['home', 'foreign', 'nokey'] as const) {
      const p = plan({ keyMode: mode, tooLate: 0, count: 300 });
      for (const r of p.records) {
        assert.equal(r.keyMode, mode);
        const id = r.kind === 'bad' && r.reason === 'bad_json' ? null : (JSON.parse(r.value) as { impression_id?: string }).impression_id;
        if (mode === 'home') assert.ok(r.key !== null && r.partition === null);
        if (mode === 'foreign') {
          assert.ok(r.key !== null && r.partition !== null && r.partition >= 0 && r.partition < 8);
          assert.notEqual(r.partition, homePartition(r.key, 8));
          if (id) assert.equal(r.key, id);
        }
        if (mode === 'nokey') assert.ok(r.key === null && r.partition !== null && r.partition >= 0 && r.partition < 8);
      }
    }
    const p = plan({ keyMode: 'mixed', duplicates: 0.5 });
    const modes = new Map<string, number>();
    for (const r of p.records) modes.set(r.keyMode, (modes.get(r.keyMode) ?? 0) + 1);
    for (const m of ['home', 'foreign', 'nokey']) assert.ok((modes.get(m) ?? 0) > p.records.length / 5, m);
    const originalMode = new Map(p.records.filter((r) => r.kind === 'original').map((r) => [r.value, r.keyMode]));
    assert.ok(p.records.some((r) => (r.kind === 'duplicate' || r.kind === 'late_retry') && originalMode.get(r.value) !== r.keyMode));
  });

  it('paces rate mode along the wall clock', () => {
    const p = plan({ rate: 100, durationS: 10, jitterMs: 500 });
    assert.equal(p.paced, true);
    assert.equal(p.durationMs, 10_000);
    assert.equal(p.records.filter((r) => r.kind === 'original').length, 1000);
    let prev = 0;
    for (const r of p.records.slice(0, p.mainCount)) {
      assert.ok(r.dueMs >= prev && r.dueMs < 10_000);
      prev = r.dueMs;
      if (r.kind === 'original') assert.ok(body(r).ts <= NOW + r.dueMs && body(r).ts >= NOW + r.dueMs - 500);
      if (r.reason === null) assert.ok(body(r).ts <= NOW + r.dueMs, 'never ahead of its send time');
    }
    assert.ok(p.records.slice(p.mainCount).every((r) => r.dueMs === 0));
  });

  it('refuses options that could not give an exact truth', () => {
    assert.throws(() => plan({ spanMs: 2 * 3_600_000 }), /span-ms/);
    assert.throws(() => plan({ idPrefix: 'bad prefix' }), /id-prefix/);
    assert.throws(() => plan({ rate: 10 }), /duration/);
    assert.throws(() => plan({ duplicates: -1 }), /duplicates/);
    // A short dedup horizon shrinks the default span and the late ages instead of failing.
    const short = plan({ lateWithinHorizon: 5 }, { ...ctx, dedupHorizonMs: 60_000, allowedLatenessMs: 5_000 });
    const ages = short.records.filter((r) => r.reason === null).map((r) => NOW - body(r).ts);
    assert.ok(Math.max(...ages) <= 32_500);
  });

  it('merges truths of several phases and refuses colliding ones', () => {
    const a = plan({ count: 500, seed: 1 }).truth;
    const b = plan({ count: 700, seed: 2 }).truth;
    const m = mergeTruth(a, b);
    assert.equal(m.counts.sent, a.counts.sent + b.counts.sent);
    assert.equal(m.counts.unique, a.counts.unique + b.counts.unique);
    assert.equal(m.deadLetters.too_late, a.deadLetters.too_late + b.deadLetters.too_late);
    assert.equal(m.rows.reduce((s, r) => s + r.impressions, 0), m.counts.unique);
    assert.equal(m.idPrefix, 'ut-');
    assert.equal(m.phases.length, 2);
    assert.throws(() => mergeTruth(a, a), /same id prefix/);
    const c = buildEventPlan({ count: 10, idPrefix: 'ut-x', seed: 1 }, ctx).truth;
    assert.equal(mergeTruth(a, c).idPrefix, 'ut-');
    assert.deepEqual(parseTruth(JSON.parse(JSON.stringify(m))), m);
  });

  it('compares ClickHouse rows with the truth exactly', () => {
    const t = plan({ count: 200 }).truth;
    const rows = t.rows.map((r) => ({ ...r, impressions: BigInt(r.impressions), spendMicros: BigInt(r.spendMicros) }));
    assert.equal(compareWithTruth(t, rows).ok, true);
    const off = rows.map((r, i) => (i === 3 ? { ...r, spendMicros: r.spendMicros + 1n } : r));
    const cmp = compareWithTruth(t, [...off.slice(1), { ...rows[0], campaignId: 'other' }]);
    assert.equal(cmp.differences.length, 3);
    const by = new Map(cmp.differences.map((d) => [d.kind, d]));
    assert.deepEqual(by.get('missing'), {
      windowStart: t.rows[0].windowStart, advertiserId: t.rows[0].advertiserId, campaignId: t.rows[0].campaignId, kind: 'missing',
      expectedImpressions: String(t.rows[0].impressions), actualImpressions: null, expectedSpendMicros: String(t.rows[0].spendMicros), actualSpendMicros: null,
    });
    assert.equal(by.get('different')?.campaignId, t.rows[3].campaignId);
    assert.equal(by.get('different')?.actualSpendMicros, String(t.rows[3].spendMicros + 1));
    assert.equal(by.get('different')?.actualImpressions, String(t.rows[3].impressions));
    assert.equal(by.get('extra')?.campaignId, 'other');
    assert.equal(cmp.expected.impressions, String(t.counts.unique));
    assert.equal(cmp.ok, false);
  });
});
