/**
 * Shared by the sink tests (sink*.test.ts): a model of what the aggregator writes to
 * impression-counts and what the table must then hold, reads of the table and of the sink's
 * committed offsets, and a test bed that releases each test's sandbox, clients and processes.
 */
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '../../server/src/clickhouse/index.js';
import { encodeWatermark, encodeWindowRow, watermarkKey, type WindowRow } from '../../server/src/contracts/count-record.js';
import { createClickHouse, identifier, queryRows } from '../../server/src/clickhouse/index.js';
import type { TallyConfig } from '../../server/src/config/index.js';
import { Consumer, DeliveringProducer, type OutgoingRecord } from '../../server/src/kafka/index.js';
import { createRng } from '../../server/src/tools/index.js';
import { createSandbox, eventually, RoleProcess, type Sandbox } from '../kit/harness.js';

const BASE_MS = Date.UTC(2026, 0, 1, 0, 0, 0);

interface ExpectedRow {
  ws: number; we: number; advertiser_id: string; campaign_id: string; source_partition: number;
  impressions: number; spend_micros: number; duplicates: number; version: number; final: number; revised: number;
}

/**
 * What the aggregator would write to impression-counts, and what the table must hold: each
 * record a new version of a random key (counts derived from the version, so only the highest
 * version's row matches), some tombstones, a watermark per partition now and then.
 */
export class CountsModel {
  private readonly keys: Array<{ ws: number; adv: string; cmp: string; p: number; key: string }> = [];
  private readonly latest = new Map<string, WindowRow>();
  private readonly watermarks = new Map<number, number>();
  private readonly random: () => number;
  private cursor = 0;
  produced = 0;

  /** `sequential`: keys in turn instead of at random, and no tombstones or watermarks (one version per key per round). */
  constructor(readonly topic: string, readonly partitions: number, keysPerPartition: number, seed: number,
    readonly opts = { tombstones: 0.08, watermarks: 0.04, sequential: false }) {
    this.random = createRng(seed);
    for (let p = 0; p < partitions; p++) {
      for (let i = 0; i < keysPerPartition; i++) {
        const ws = BASE_MS + (i % 30) * 60_000;
        const adv = `adv-${i % 7}`;
        const cmp = `cmp-${p}-${i}`;
        this.keys.push({ ws, adv, cmp, p, key: `${ws}|${adv}|${cmp}|${p}` });
      }
    }
  }

  /** The next `n` records, applied to the model. */
  next(n: number): OutgoingRecord[] {
    const out: OutgoingRecord[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.opts.sequential ? this.keys[this.cursor++ % this.keys.length] : this.keys[Math.floor(this.random() * this.keys.length)];
      const roll = this.opts.sequential ? 1 : this.random();
      if (roll < this.opts.watermarks) {
        const wm = (this.watermarks.get(k.p) ?? BASE_MS) + 1 + Math.floor(this.random() * 1000);
        this.watermarks.set(k.p, wm);
        out.push({ topic: this.topic, partition: k.p, key: watermarkKey(k.p), value: encodeWatermark({ source_partition: k.p, watermark: wm, max_event_time: wm + 5_000, emitted_at: Date.now() }) });
      } else if (roll < this.opts.watermarks + this.opts.tombstones && this.latest.has(k.key)) {
        out.push({ topic: this.topic, partition: k.p, key: k.key, value: null });
      } else {
        const version = (this.latest.get(k.key)?.version ?? 0) + 1;
        const row = this.row(k, version);
        this.latest.set(k.key, row);
        out.push({ topic: this.topic, partition: k.p, key: k.key, value: encodeWindowRow(row) });
      }
    }
    this.produced += n;
    return out;
  }

  /** One watermark record per partition (so each partition ends with a non-transactional record). */
  watermarkEveryPartition(): OutgoingRecord[] {
    const out: OutgoingRecord[] = [];
    for (let p = 0; p < this.partitions; p++) {
      const wm = (this.watermarks.get(p) ?? BASE_MS) + 1_000;
      this.watermarks.set(p, wm);
      out.push({ topic: this.topic, partition: p, key: watermarkKey(p), value: encodeWatermark({ source_partition: p, watermark: wm, max_event_time: wm + 5_000, emitted_at: Date.now() }) });
    }
    this.produced += out.length;
    return out;
  }

  /** A row of `key` that the table must never show (e.g. from an aborted transaction). */
  bogus(version: number): OutgoingRecord {
    const k = this.keys[0];
    return { topic: this.topic, partition: k.p, key: k.key, value: encodeWindowRow({ ...this.row(k, version), impressions: 999_999 }) };
  }

  private row(k: { ws: number; adv: string; cmp: string; p: number }, version: number): WindowRow {
    return {
      windowStart: k.ws, windowEnd: k.ws + 60_000, advertiserId: k.adv, campaignId: k.cmp, sourcePartition: k.p,
      impressions: version * 3 + (k.p % 3), spendMicros: BigInt(version * 1_250 + k.p), duplicates: version % 4, version,
      final: version % 5 === 0, revised: version % 10 === 0,
    };
  }

  expectedRows(): Map<string, ExpectedRow> {
    const m = new Map<string, ExpectedRow>();
    for (const r of this.latest.values()) {
      m.set(`${r.windowStart / 1000}|${r.advertiserId}|${r.campaignId}|${r.sourcePartition}`, {
        ws: r.windowStart / 1000, we: r.windowEnd / 1000, advertiser_id: r.advertiserId, campaign_id: r.campaignId,
        source_partition: r.sourcePartition, impressions: r.impressions, spend_micros: Number(r.spendMicros), duplicates: r.duplicates,
        version: r.version, final: r.final ? 1 : 0, revised: r.revised ? 1 : 0,
      });
    }
    return m;
  }

  expectedWatermarks(): Map<number, number> {
    return new Map(this.watermarks);
  }
}

type RawRow = { [K in keyof ExpectedRow]: string | number };

async function tableRows(ch: ClickHouseClient, db: string): Promise<Map<string, ExpectedRow>> {
  const rows = await queryRows<RawRow>(ch, `SELECT toUnixTimestamp(window_start) AS ws, toUnixTimestamp(window_end) AS we, advertiser_id, campaign_id,
    source_partition, impressions, spend_micros, duplicates, version, final, revised FROM ${identifier(db)}.impression_counts FINAL`);
  const m = new Map<string, ExpectedRow>();
  for (const r of rows) {
    const row: ExpectedRow = {
      ws: Number(r.ws), we: Number(r.we), advertiser_id: String(r.advertiser_id), campaign_id: String(r.campaign_id),
      source_partition: Number(r.source_partition), impressions: Number(r.impressions), spend_micros: Number(r.spend_micros),
      duplicates: Number(r.duplicates), version: Number(r.version), final: Number(r.final), revised: Number(r.revised),
    };
    const key = `${row.ws}|${row.advertiser_id}|${row.campaign_id}|${row.source_partition}`;
    assert.ok(!m.has(key), `FINAL returned ${key} twice`);
    m.set(key, row);
  }
  return m;
}

async function tableWatermarks(ch: ClickHouseClient, db: string): Promise<Map<number, number>> {
  const rows = await queryRows<{ p: number | string; w: number | string }>(ch, `SELECT source_partition AS p, watermark_ms AS w FROM ${identifier(db)}.partition_watermarks FINAL`);
  return new Map(rows.map((r) => [Number(r.p), Number(r.w)]));
}

/** Differences between the table and the model ('' when exact). */
function diff(actual: Map<string, ExpectedRow>, expected: Map<string, ExpectedRow>): string {
  const problems: string[] = [];
  for (const [k, e] of expected) {
    const a = actual.get(k);
    if (!a) problems.push(`missing ${k} (v${e.version})`);
    else if (JSON.stringify(a) !== JSON.stringify(e)) problems.push(`${k}: got v${a.version} ${JSON.stringify(a)}, want v${e.version} ${JSON.stringify(e)}`);
  }
  for (const k of actual.keys()) if (!expected.has(k)) problems.push(`unexpected ${k}`);
  return problems.length === 0 ? '' : `${problems.length} differences, e.g.\n  ${problems.slice(0, 5).join('\n  ')}`;
}

/** Waits (up to timeoutMs) for impression_counts FINAL and partition_watermarks to equal the model; throws with the last difference. */
export async function assertExact(ch: ClickHouseClient, db: string, model: CountsModel, timeoutMs: number): Promise<void> {
  const expected = model.expectedRows();
  const expectedWm = model.expectedWatermarks();
  let last = '';
  try {
    await eventually('the table to match the model exactly', async () => {
      last = diff(await tableRows(ch, db), expected);
      if (last !== '') return false;
      const wms = await tableWatermarks(ch, db);
      last = JSON.stringify([...wms]) === JSON.stringify([...expectedWm].sort((a, b) => a[0] - b[0])) ? ''
        : `watermarks: got ${JSON.stringify([...wms])}, want ${JSON.stringify([...expectedWm])}`;
      return last === '';
    }, timeoutMs, 250);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${last}`);
  }
}

/** Rows of impression_counts before merging (versions not yet replaced included). */
export async function rawCount(ch: ClickHouseClient, db: string): Promise<number> {
  return Number((await queryRows<{ c: string }>(ch, `SELECT count() AS c FROM ${identifier(db)}.impression_counts`))[0].c);
}

/** Per partition of impression-counts: the sink group's committed offset (-1001: none) and the end of the log. */
export async function committedAndEnd(config: TallyConfig): Promise<Array<{ partition: number; committed: number; end: number }>> {
  const c = new Consumer({ brokers: config.kafka.brokers, groupId: config.groups.sink, isolation: 'read_committed' });
  await c.connect(10_000);
  try {
    const topic = config.topics.counts;
    const tps = Array.from({ length: config.partitions }, (_, partition) => ({ topic, partition }));
    const committed = await c.committed(tps, 10_000);
    const out = [];
    for (const tp of committed) {
      const wm = await c.queryWatermarkOffsets(topic, tp.partition, 10_000);
      // No committed offset: node-rdkafka leaves `offset` out (librdkafka's -1001).
      out.push({ partition: tp.partition, committed: (tp.offset as number | undefined) ?? -1001, end: wm.highOffset });
    }
    return out.sort((a, b) => a.partition - b.partition);
  } finally {
    await c.disconnect();
  }
}

/** One test's sandbox, ClickHouse client, producer and sink processes; `release()` (afterEach) ends them all. */
export class SinkTestBed {
  private readonly sandboxes: Sandbox[] = [];
  private readonly procs: RoleProcess[] = [];
  private readonly clients: ClickHouseClient[] = [];
  private readonly producers: DeliveringProducer[] = [];

  async setup(name: string, overrides: Record<string, string>): Promise<{ sb: Sandbox; ch: ClickHouseClient; producer: DeliveringProducer; db: string }> {
    const sb = await createSandbox(name, overrides);
    this.sandboxes.push(sb);
    const ch = this.track(createClickHouse(sb.config));
    const producer = new DeliveringProducer(sb.config.kafka.brokers);
    await producer.connect();
    this.producers.push(producer);
    return { sb, ch, producer, db: sb.config.clickhouse.database };
  }

  startSink(env: NodeJS.ProcessEnv): RoleProcess {
    const p = new RoleProcess('sink', env);
    this.procs.push(p);
    return p;
  }

  /** A ClickHouse client closed with the rest. */
  track(ch: ClickHouseClient): ClickHouseClient {
    this.clients.push(ch);
    return ch;
  }

  async release(): Promise<void> {
    for (const p of this.procs.splice(0)) await p.kill();
    for (const p of this.producers.splice(0)) await p.disconnect().catch(() => undefined);
    for (const c of this.clients.splice(0)) await c.close().catch(() => undefined);
    for (const sb of this.sandboxes.splice(0)) await sb.cleanup();
  }
}
