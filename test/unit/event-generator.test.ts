import assert from 'node:assert/strict';
import { DIMENSIONS, UNKNOWN_VALUE } from '../../server/src/contracts/dimensions.js';
import { dimensionFields, homePartition, parseImpression } from '../../server/src/impression/index.js';
import {
  BAD_KINDS, buildEventPlan, compareWithTruth, dimensionValuesOf, mergeTruth, parseTruth, truthRowsOf,
  type EventPlan, type GeneratorOptions, type PlanContext, type PlannedRecord, type TruthRow, type TruthValueCounts,
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

/** Breakdowns recomputed independently: the first copy of each id, its values as the aggregator's parser reads them. */
function recountBreakdowns(p: EventPlan): Map<string, Map<string, [number, bigint]>> {
  const fields = dimensionFields(DIMENSIONS);
  const seen = new Set<string>();
  const cells = new Map<string, Map<string, [number, bigint]>>();
  for (const r of p.records.filter(counted)) {
    const parsed = parseImpression(Buffer.from(r.value), fields);
    assert.ok(parsed.ok);
    const imp = parsed.impression;
    if (seen.has(imp.impressionId)) continue;
    seen.add(imp.impressionId);
    DIMENSIONS.forEach((d, i) => {
      const k = `${Math.floor(imp.ts / ctx.windowMs) * ctx.windowMs}|${imp.advertiserId}|${imp.campaignId}|${d}`;
      const values = cells.get(k) ?? new Map<string, [number, bigint]>();
      const [n, spend] = values.get(imp.dimensionValues[i]) ?? [0, 0n];
      values.set(imp.dimensionValues[i], [n + 1, spend + BigInt(imp.costMicros)]);
      cells.set(k, values);
    });
  }
  return cells;
}

/** Each dimension of a row sums to the row, to the impression and the micro. */
function assertSumsToRows(rows: TruthRow[]): void {
  for (const r of rows) {
    assert.ok(r.breakdowns, `${r.campaignId} has breakdowns`);
    for (const d of DIMENSIONS) {
      const values: TruthValueCounts[] = Object.values(r.breakdowns?.[d] ?? {});
      assert.equal(values.reduce((s, [n]) => s + n, 0), r.impressions, d);
      assert.equal(values.reduce((s, [, spend]) => s + BigInt(spend), 0n), BigInt(r.spendMicros), d);
    }
  }
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

  it('breaks the truth down by every dimension value the aggregator counts: first copies only, unknown for missing values', () => {
    const p = plan({ duplicates: 0.5, lateWithinHorizon: 25, tooLate: 7, bad: 18 });
    const cells = recountBreakdowns(p);
    let truthCells = 0;
    for (const r of p.truth.rows) {
      for (const d of DIMENSIONS) {
        truthCells++;
        const expected = cells.get(`${r.windowStart}|${r.advertiserId}|${r.campaignId}|${d}`);
        assert.deepEqual(
          Object.entries(r.breakdowns?.[d] ?? {}).map(([v, [n, spend]]) => [v, n, spend]),
          [...(expected ?? [])].sort(([a], [b]) => (a < b ? -1 : 1)).map(([v, [n, spend]]) => [v, n, String(spend)]),
          `${r.campaignId} ${d}`,
        );
      }
    }
    assert.equal(truthCells, cells.size);
    assertSumsToRows(p.truth.rows);
    // ~20 % of the events lack each field, and the generator's cardinalities stay below the default limit.
    const values = (d: (typeof DIMENSIONS)[number]) => new Set(p.truth.rows.flatMap((r) => Object.keys(r.breakdowns?.[d] ?? {})));
    for (const d of DIMENSIONS) assert.ok(values(d).has(UNKNOWN_VALUE), `${d} has unknown`);
    assert.equal(values('creative_id').size, 12 + 1);
    assert.equal(values('device').size, 4 + 1);
    const unknownShare = p.truth.rows.reduce((s, r) => s + (r.breakdowns?.country?.[UNKNOWN_VALUE]?.[0] ?? 0), 0) / p.truth.counts.unique;
    assert.ok(unknownShare > 0.15 && unknownShare < 0.25, `unknown country share ${unknownShare}`);
  });

  it('takes a dimension value exactly as dimensionValueOf does', () => {
    assert.deepEqual(dimensionValuesOf({ creative_id: 'cr-1', publisher_id: 'x'.repeat(129), country: 42, device: '' }),
      { creative_id: 'cr-1', publisher_id: UNKNOWN_VALUE, country: UNKNOWN_VALUE, device: UNKNOWN_VALUE });
    assert.deepEqual(dimensionValuesOf({ creative_id: 'a\u0001', publisher_id: 'x'.repeat(128), country: 'other', device: null }),
      { creative_id: UNKNOWN_VALUE, publisher_id: 'x'.repeat(128), country: 'other', device: UNKNOWN_VALUE });
    // Values that are Object.prototype's names are values like any other, through a truth file too.
    const body = JSON.parse('{"__proto__": "x", "creative_id": "__proto__", "publisher_id": "constructor", "country": "toString"}') as Record<string, unknown>;
    const values = dimensionValuesOf(body);
    assert.deepEqual(Object.entries(values), [['creative_id', '__proto__'], ['publisher_id', 'constructor'], ['country', 'toString'], ['device', UNKNOWN_VALUE]]);
    const rows = truthRowsOf([
      { ts: NOW, advertiserId: 'a', campaignId: 'a-1', costMicros: 7, dimensionValues: values },
      { ts: NOW + 1, advertiserId: 'a', campaignId: 'a-1', costMicros: 5, dimensionValues: dimensionValuesOf({}) },
    ], ctx.windowMs);
    assert.equal(rows.length, 1);
    assert.deepEqual(Object.entries(rows[0].breakdowns?.creative_id ?? {}), [['__proto__', [1, '7']], [UNKNOWN_VALUE, [1, '5']]]);
    assert.deepEqual(Object.entries(rows[0].breakdowns?.device ?? {}), [[UNKNOWN_VALUE, [2, '12']]]);
    const truth = { ...plan({ count: 0, lateWithinHorizon: 0, tooLate: 0, bad: 0 }).truth, rows };
    assert.deepEqual(parseTruth(JSON.parse(JSON.stringify(truth))), truth);
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
          impressionId: b.impression_id, ts: b.ts, advertiserId: b.advertiser_id, campaignId: b.campaign_id, costMicros: b.cost_micros, dimensionValues: [],
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

  it('merges breakdowns with the rows; a row whose breakdowns one side does not know has none', () => {
    const a = plan({ count: 500, seed: 1 }).truth;
    const b = plan({ count: 700, seed: 2 }).truth;
    const m = mergeTruth(a, b);
    assertSumsToRows(m.rows);
    const shared = m.rows.filter((r) => a.rows.some((x) => x.windowStart === r.windowStart && x.campaignId === r.campaignId)
      && b.rows.some((x) => x.windowStart === r.windowStart && x.campaignId === r.campaignId));
    assert.ok(shared.length > 5, `${shared.length} rows in both`);
    // Per value: the sum of both sides, spend exact.
    const byValue = (rows: TruthRow[]) => {
      const out = new Map<string, { n: number; spend: bigint }>();
      for (const r of rows) {
        for (const d of DIMENSIONS) {
          for (const [v, [n, spend]] of Object.entries(r.breakdowns?.[d] ?? {})) {
            const k = `${r.windowStart}|${r.campaignId}|${d}|${v}`;
            const held = out.get(k) ?? { n: 0, spend: 0n };
            out.set(k, { n: held.n + n, spend: held.spend + BigInt(spend) });
          }
        }
      }
      return out;
    };
    assert.deepEqual(byValue(m.rows), byValue([...a.rows, ...b.rows]));
    // A hand-made truth (no breakdowns) merged in: the rows both have lose theirs, the others keep them.
    const hand = { ...b, rows: b.rows.map(({ breakdowns: _, ...r }) => r), phases: [{ idPrefix: 'ut-', seed: 99, generatedAt: '' }] };
    const mixed = mergeTruth(a, hand);
    for (const r of mixed.rows) {
      const inA = a.rows.some((x) => x.windowStart === r.windowStart && x.campaignId === r.campaignId);
      const inHand = hand.rows.some((x) => x.windowStart === r.windowStart && x.campaignId === r.campaignId);
      assert.equal(r.breakdowns !== undefined, inA && !inHand, `${r.windowStart} ${r.campaignId}`);
      assert.ok(!('breakdowns' in r) || r.breakdowns !== undefined, 'no breakdowns: undefined');
    }
    assert.deepEqual(parseTruth(JSON.parse(JSON.stringify(mixed))), mixed);
  });

  it('reads truth files without breakdowns and refuses breakdowns that are not the truth\'s', () => {
    const t = plan({ count: 100 }).truth;
    const json = JSON.parse(JSON.stringify(t)) as { rows: Array<Record<string, unknown>> };
    const old = { ...json, rows: json.rows.map(({ breakdowns: _, ...r }) => r) };
    assert.deepEqual(parseTruth(old).rows, t.rows.map(({ breakdowns: _, ...r }) => r));
    const withRow0 = (breakdowns: unknown) => ({ ...json, rows: [{ ...json.rows[0], breakdowns }, ...json.rows.slice(1)] });
    const b0 = t.rows[0].breakdowns ?? {};
    assert.throws(() => parseTruth(withRow0({ ...b0, colour: {} })), /rows\[0\]\.breakdowns: "colour" is not a dimension/);
    const firstValue = Object.keys(b0.device ?? {})[0];
    const off = (counts: unknown) => withRow0({ ...b0, device: { ...b0.device, [firstValue]: counts } });
    const [n, spend] = (b0.device ?? {})[firstValue];
    assert.throws(() => parseTruth(off([n, String(BigInt(spend) + 1n)])), /device: its values do not sum to the row/);
    assert.throws(() => parseTruth(off([n, Number(spend)])), /not \[impressions, "spend micros"\]/);
    assert.throws(() => parseTruth(off([0, '0'])), /not \[impressions/);
    assert.throws(() => parseTruth(withRow0([])), /breakdowns: not an object/);
    assert.deepEqual(parseTruth(withRow0({ device: b0.device })).rows[0].breakdowns, { device: b0.device });
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
