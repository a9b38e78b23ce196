import assert from 'node:assert/strict';
import { encodeWatermark, encodeWindowRow, type WindowRow } from '../../server/src/contracts/count-record.js';
import { encodePeriodClose, periodCloseProblem, type PeriodCloseRecord } from '../../server/src/contracts/period-close-record.js';
import { RowBatch } from '../../server/src/sink/index.js';

const T0 = Date.UTC(2025, 10, 26, 12, 0, 0);

function row(over: Partial<WindowRow> = {}): WindowRow {
  return {
    windowStart: T0, windowEnd: T0 + 60_000, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: 0,
    impressions: 10, spendMicros: 1_000n, duplicates: 0, version: 1, final: false, revised: false, ...over,
  };
}

const H = 3_600_000;
function close(over: Partial<Omit<PeriodCloseRecord, 'type'>> = {}): Omit<PeriodCloseRecord, 'type'> {
  return {
    period_start: T0, period_end: T0 + H, source_partition: 2, closed_at: T0 + H + 70_123, watermark: T0 + H + 65_000,
    rows: [
      { advertiser_id: 'adv-1', campaign_id: 'cmp-1', impressions: 7, spend_micros: 1_500, duplicates: 1 },
      { advertiser_id: 'adv-1', campaign_id: 'cmp-2', impressions: 1, spend_micros: '9007199254740993', duplicates: 0 },
    ],
    late_unbillable: [{ advertiser_id: 'adv-1', original_period_start: T0 - 2 * H, events: 3 }],
    lineage: {
      source: { topic: 'impressions', partition: 2, first_offset: 10, close_offset: 500 },
      repartition: { topic: 'aggregator-repartition', partition: 2, first_offset: null, close_offset: 4 },
    },
    ...over,
  };
}

const wm = (p: number, watermark: number, emittedAt = T0 + 90_000) =>
  encodeWatermark({ source_partition: p, watermark, max_event_time: watermark + 5_000, emitted_at: emittedAt });

describe('sink RowBatch', () => {
  it('expands the kept version\'s breakdowns into impression_breakdowns rows, inserted right after the window rows', () => {
    const b = new RowBatch();
    const byCountry = (de: number, fr: number) => [{ dimension: 'country' as const, values: [
      { value: 'DE', impressions: de, spendMicros: BigInt(de * 100) }, { value: 'FR', impressions: fr, spendMicros: BigInt(fr * 100) },
    ] }];
    b.add(0, 10, encodeWindowRow(row({ version: 2, impressions: 3, spendMicros: 300n, breakdowns: byCountry(2, 1) })));
    b.add(0, 11, encodeWindowRow(row({ version: 1, impressions: 1, spendMicros: 100n, breakdowns: byCountry(1, 0) })));
    b.add(0, 12, encodeWindowRow(row({ campaignId: 'cmp-2' }))); // no breakdowns: none configured when it was written
    assert.deepEqual(b.breakdownRows().map((r) => [r.campaign_id, r.dimension, r.value, r.impressions, r.spend_micros, r.version]), [
      ['cmp-1', 'country', 'DE', 2, 200, 2], ['cmp-1', 'country', 'FR', 1, 100, 2],
    ]);
    assert.deepEqual(b.inserts().map((t) => t.table), ['impression_counts', 'impression_breakdowns']);
  });

  it('keeps only the highest version per window key, whatever the order', () => {
    const b = new RowBatch();
    b.add(0, 10, encodeWindowRow(row({ version: 1, impressions: 1 })));
    b.add(0, 11, encodeWindowRow(row({ version: 3, impressions: 3 })));
    b.add(0, 12, encodeWindowRow(row({ version: 2, impressions: 2 })));
    b.add(0, 13, encodeWindowRow(row({ campaignId: 'cmp-2', version: 7, impressions: 70 })));
    b.add(0, 14, encodeWindowRow(row({ sourcePartition: 1, version: 1, impressions: 5 })));
    b.add(0, 15, encodeWindowRow(row({ windowStart: T0 + 60_000, windowEnd: T0 + 120_000, version: 1, impressions: 9 })));
    const rows = b.windowRows();
    assert.equal(rows.length, 4);
    const main = rows.find((r) => r.campaign_id === 'cmp-1' && r.source_partition === 0 && r.window_start === T0 / 1000);
    assert.deepEqual(main, {
      window_start: T0 / 1000, window_end: T0 / 1000 + 60, advertiser_id: 'adv-1', campaign_id: 'cmp-1', source_partition: 0,
      impressions: 3, spend_micros: 1_000, duplicates: 0, version: 3, final: 0, revised: 0,
    });
    assert.equal(rows.find((r) => r.campaign_id === 'cmp-2')?.version, 7);
    assert.equal(rows.find((r) => r.source_partition === 1)?.impressions, 5);
    assert.equal(b.rowCount, 4);
    assert.equal(b.records, 6);
  });

  it('an equal version replaces the held row; flags become 0/1 and times epoch seconds', () => {
    const b = new RowBatch();
    b.add(2, 0, encodeWindowRow(row({ version: 4, impressions: 4 })));
    b.add(2, 1, encodeWindowRow(row({ version: 4, impressions: 4, final: true, revised: true })));
    const [r] = b.windowRows();
    assert.equal(r.final, 1);
    assert.equal(r.revised, 1);
    assert.equal(r.window_start, 1764158400);
    assert.equal(r.window_end, 1764158460);
  });

  it('ignores tombstones (null or empty value) but moves the offset past them', () => {
    const b = new RowBatch();
    assert.deepEqual(b.add(3, 5, encodeWindowRow(row({ version: 2 }))), { kind: 'window' });
    assert.deepEqual(b.add(3, 6, null), { kind: 'tombstone' });
    assert.deepEqual(b.add(3, 7, Buffer.alloc(0)), { kind: 'tombstone' });
    assert.deepEqual(b.add(4, 100, undefined), { kind: 'tombstone' });
    assert.equal(b.windowRows().length, 1, 'the row is kept: ClickHouse keeps evicted windows');
    assert.equal(b.rowCount, 1);
    assert.deepEqual(b.offsets(), [{ partition: 3, offset: 8 }, { partition: 4, offset: 101 }]);
    assert.equal(b.isEmpty, false, 'a tombstone-only batch still has offsets to commit');
  });

  it('routes watermark records to the watermark rows, newest per source partition', () => {
    const b = new RowBatch();
    assert.deepEqual(b.add(0, 1, wm(0, T0)), { kind: 'watermark' });
    b.add(0, 2, wm(0, T0 + 30_000));
    b.add(0, 3, wm(0, T0 + 10_000));
    b.add(1, 1, wm(1, T0 - 5_000));
    b.add(1, 2, encodeWindowRow(row({ sourcePartition: 1 })));
    assert.equal(b.windowRows().length, 1);
    const wms = b.watermarkRows().sort((a, c) => a.source_partition - c.source_partition);
    assert.deepEqual(wms, [
      { source_partition: 0, watermark_ms: T0 + 30_000, max_event_time_ms: T0 + 35_000, updated_at: (T0 + 90_000) / 1000, version: T0 + 30_000 },
      { source_partition: 1, watermark_ms: T0 - 5_000, max_event_time_ms: T0, updated_at: (T0 + 90_000) / 1000, version: T0 - 5_000 },
    ]);
    assert.equal(b.rowCount, 3);
  });

  it('a negative watermark is stored with version 0', () => {
    const b = new RowBatch();
    b.add(0, 0, wm(0, -5_000));
    assert.equal(b.watermarkRows()[0].version, 0);
    assert.equal(b.watermarkRows()[0].watermark_ms, -5_000);
  });

  it('offsets to commit are the last offset + 1 per partition, even out of order', () => {
    const b = new RowBatch();
    b.add(5, 40, encodeWindowRow(row({ sourcePartition: 5 })));
    b.add(1, 7, encodeWindowRow(row({ sourcePartition: 1 })));
    b.add(5, 42, encodeWindowRow(row({ sourcePartition: 5, version: 2 })));
    b.add(5, 41, null);
    b.add(1, 9, wm(1, T0));
    assert.deepEqual(b.offsets(), [{ partition: 1, offset: 10 }, { partition: 5, offset: 43 }]);
  });

  it('flags poison records (not JSON, unknown type, unstorable fields) and still moves the offset', () => {
    const b = new RowBatch();
    assert.deepEqual(b.add(0, 0, Buffer.from('not json')), { kind: 'poison', reason: 'not_json' });
    assert.deepEqual(b.add(0, 1, Buffer.from('{"type":"other"}')), { kind: 'poison', reason: 'unknown_type' });
    assert.deepEqual(b.add(0, 2, Buffer.from('42')), { kind: 'poison', reason: 'unknown_type' });
    assert.deepEqual(b.add(0, 3, Buffer.from('null')), { kind: 'poison', reason: 'unknown_type' });
    const bad = { ...JSON.parse(encodeWindowRow(row()).toString()), impressions: -1 };
    assert.deepEqual(b.add(0, 4, Buffer.from(JSON.stringify(bad))), { kind: 'poison', reason: 'bad_impressions' });
    const badTime = { ...JSON.parse(encodeWindowRow(row()).toString()), window_start: 'yesterday' };
    assert.deepEqual(b.add(0, 5, Buffer.from(JSON.stringify(badTime))), { kind: 'poison', reason: 'bad_window_start' });
    const badPartition = { ...JSON.parse(encodeWindowRow(row()).toString()), source_partition: 70_000 };
    assert.deepEqual(b.add(0, 6, Buffer.from(JSON.stringify(badPartition))), { kind: 'poison', reason: 'bad_source_partition' });
    const badWm = { ...JSON.parse(wm(0, T0).toString()), watermark: null };
    assert.deepEqual(b.add(0, 7, Buffer.from(JSON.stringify(badWm))), { kind: 'poison', reason: 'bad_watermark' });
    assert.equal(b.rowCount, 0);
    assert.equal(b.records, 8);
    assert.deepEqual(b.offsets(), [{ partition: 0, offset: 8 }]);
  });

  it('a period close becomes ledger rows, late rows and its close row, inserted after the window rows and before the watermarks', () => {
    const b = new RowBatch();
    b.add(0, 0, wm(2, T0 + H + 65_000));
    assert.deepEqual(b.add(0, 1, encodePeriodClose(close())), { kind: 'period_close' });
    b.add(0, 2, encodeWindowRow(row({ sourcePartition: 2 })));
    assert.equal(b.closeCount, 1);
    assert.equal(b.rowCount, 1 + 2 + 1 + 1 + 1);
    const inserts = b.inserts();
    assert.deepEqual(inserts.map((i) => i.table), ['impression_counts', 'billing_ledger', 'billing_late', 'period_closes', 'partition_watermarks'],
      'a close row lands after its ledger rows; a watermark after everything it closes');
    const s = T0 / 1000;
    assert.deepEqual(inserts[1].values, [
      { period_start: s, advertiser_id: 'adv-1', campaign_id: 'cmp-1', source_partition: 2, impressions: 7, spend_micros: 1_500, duplicates: 1, closed_at: s + 3670 },
      { period_start: s, advertiser_id: 'adv-1', campaign_id: 'cmp-2', source_partition: 2, impressions: 1, spend_micros: '9007199254740993', duplicates: 0, closed_at: s + 3670 },
    ], 'spend above 2^53 stays a digit string');
    assert.deepEqual(inserts[2].values, [{ arrival_period: s, advertiser_id: 'adv-1', original_period: s - 7200, source_partition: 2, events: 3 }]);
    assert.deepEqual(inserts[3].values, [{
      period_start: s, source_partition: 2, closed_at: s + 3670, watermark_ms: T0 + H + 65_000, ledger_rows: 2,
      source_topic: 'impressions', source_first_offset: 10, source_close_offset: 500,
      repartition_topic: 'aggregator-repartition', repartition_first_offset: -1, repartition_close_offset: 4,
    }], 'no contributing offset is stored as -1');
    // An empty close (the partition held nothing of the hour) still says the hour is closed there.
    const empty = new RowBatch();
    empty.add(1, 0, encodePeriodClose(close({ rows: [], late_unbillable: [] })));
    assert.deepEqual(empty.inserts().map((i) => i.table), ['period_closes']);
  });

  it('a malformed period close is poison, named by its first bad field', () => {
    assert.equal(periodCloseProblem(close()), null);
    const cases: Array<[Partial<Omit<PeriodCloseRecord, 'type'>>, string]> = [
      [{ period_start: T0 + 1 }, 'bad_period_start'],
      [{ period_end: T0 + 2 * H }, 'bad_period_end'],
      [{ source_partition: 70_000 }, 'bad_source_partition'],
      [{ closed_at: -1 }, 'bad_closed_at'],
      [{ watermark: 1.5 }, 'bad_watermark'],
      [{ rows: [{ advertiser_id: "adv'1", campaign_id: 'c', impressions: 1, spend_micros: 1, duplicates: 0 }] }, 'bad_rows'],
      [{ rows: [{ advertiser_id: 'a', campaign_id: 'c', impressions: 1, spend_micros: '1e9', duplicates: 0 }] }, 'bad_rows'],
      [{ rows: [{ advertiser_id: 'a', campaign_id: 'c', impressions: -1, spend_micros: 1, duplicates: 0 }] }, 'bad_rows'],
      [{ late_unbillable: [{ advertiser_id: 'a', original_period_start: T0 + 5, events: 1 }] }, 'bad_late_unbillable'],
      [{ lineage: { source: { topic: 'impressions', partition: 2, first_offset: 10, close_offset: 500 }, repartition: { topic: 'r', partition: 2, first_offset: -4, close_offset: 4 } } }, 'bad_lineage'],
    ];
    for (const [over, reason] of cases) {
      assert.equal(periodCloseProblem(close(over)), reason, JSON.stringify(over));
      const b = new RowBatch();
      assert.deepEqual(b.add(0, 0, encodePeriodClose(close(over))), { kind: 'poison', reason }, JSON.stringify(over));
      assert.equal(b.rowCount, 0);
    }
  });

  it('clear() empties rows, watermarks, offsets and the time bound', () => {
    const b = new RowBatch();
    b.add(0, 0, encodeWindowRow(row()), 1_000);
    b.add(0, 1, wm(0, T0), 2_000);
    assert.equal(b.firstRecordAt, 1_000);
    b.clear();
    assert.equal(b.isEmpty, true);
    assert.equal(b.rowCount, 0);
    assert.equal(b.firstRecordAt, undefined);
    assert.deepEqual(b.offsets(), []);
    assert.deepEqual(b.windowRows(), []);
    assert.deepEqual(b.watermarkRows(), []);
  });
});
