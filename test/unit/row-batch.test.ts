import assert from 'node:assert/strict';
import { encodeWatermark, encodeWindowRow } from '../../server/src/aggregator/count-record.js';
import type { WindowRow } from '../../server/src/aggregator/core/types.js';
import { RowBatch } from '../../server/src/sink/index.js';

const T0 = Date.UTC(2025, 10, 26, 12, 0, 0);

function row(over: Partial<WindowRow> = {}): WindowRow {
  return {
    windowStart: T0, windowEnd: T0 + 60_000, advertiserId: 'adv-1', campaignId: 'cmp-1', sourcePartition: 0,
    impressions: 10, spendMicros: 1_000n, duplicates: 0, version: 1, final: false, revised: false, ...over,
  };
}

const wm = (p: number, watermark: number, emittedAt = T0 + 90_000) =>
  encodeWatermark({ source_partition: p, watermark, max_event_time: watermark + 5_000, emitted_at: emittedAt });

describe('sink RowBatch', () => {
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
