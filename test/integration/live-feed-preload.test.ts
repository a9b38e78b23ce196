/**
 * The live feed's start on the real stack (an http server in the test with attachLiveFeed, no
 * aggregator): windows preloaded from ClickHouse, merged with the impression-counts topic by
 * version, rows whose window was tombstoned kept.
 */
import assert from 'node:assert/strict';
import { encodeWindowRow } from '../../server/src/contracts/count-record.js';
import { createClickHouse, identifier } from '../../server/src/clickhouse/index.js';
import { DeliveringProducer } from '../../server/src/kafka/index.js';
import { createSandbox } from '../kit/harness.js';
import { LiveFeedBed } from './live-feed-fixtures.js';

describe('live feed preload (real Kafka + ClickHouse)', function () {
  this.timeout(600_000);
  const bed = new LiveFeedBed();

  afterEach(async function () {
    this.timeout(120_000);
    await bed.close();
  });

  it('preloads windows from ClickHouse, merges with the topic by version and keeps rows whose window was tombstoned', async () => {
    const sb = await createSandbox('livepre', { TALLY_PARTITIONS: '2' });
    bed.sb = sb;
    const config = sb.config;
    const db = identifier(config.clickhouse.database);
    const W = config.windowMs;
    const now = Date.now();
    const old = Math.floor((now - 3 * 3_600_000) / W) * W; // 3 h ago: long evicted from the compacted topic
    const recent = Math.floor((now - 10 * 60_000) / W) * W;
    const tooOld = Math.floor((now - 30 * 3_600_000) / W) * W; // outside the 24 h range
    const ch = createClickHouse(config);
    const chRow = (ws: number, adv: string, cmp: string, p: number, impressions: number, version: number) => ({
      window_start: ws / 1000, window_end: (ws + W) / 1000, advertiser_id: adv, campaign_id: cmp, source_partition: p,
      impressions, spend_micros: impressions * 10, duplicates: 0, version, final: 1, revised: 0,
    });
    try {
      await ch.insert({
        table: `${db}.impression_counts`, format: 'JSONEachRow',
        values: [
          chRow(old, 'pre-adv', 'cmp-old', 0, 40, 3), // only in ClickHouse
          chRow(old, 'pre-adv', 'cmp-old', 1, 2, 1),
          chRow(recent, 'pre-adv', 'cmp-r', 0, 5, 2), // the topic has version 4 → topic wins
          chRow(recent, 'pre-adv', 'cmp-r', 1, 9, 7), // the topic has version 6 → ClickHouse wins
          chRow(tooOld, 'pre-adv', 'cmp-ancient', 0, 1, 1),
        ],
      });
    } finally {
      await ch.close();
    }
    const producer = new DeliveringProducer(config.kafka.brokers);
    await producer.connect();
    const topicRow = (ws: number, cmp: string, p: number, impressions: number, version: number) => ({
      topic: config.topics.counts, partition: p, key: `${ws}|pre-adv|${cmp}|${p}`,
      value: encodeWindowRow({
        windowStart: ws, windowEnd: ws + W, advertiserId: 'pre-adv', campaignId: cmp, sourcePartition: p,
        impressions, spendMicros: BigInt(impressions * 10), duplicates: 1, version, final: false, revised: false,
      }),
    });
    try {
      await producer.send([
        topicRow(recent, 'cmp-r', 0, 6, 4),
        topicRow(recent, 'cmp-r', 1, 8, 6),
        topicRow(recent, 'cmp-t', 1, 3, 1),
        // The aggregator evicted cmp-t's window: a tombstone, which must not delete the row.
        { topic: config.topics.counts, partition: 1, key: `${recent}|pre-adv|cmp-t|1`, value: null },
      ]);
    } finally {
      await producer.disconnect();
    }

    bed.verifier.tokens.set('tok-pre', { tokenId: 'p', name: 'pre', scopes: ['advertiser:pre-adv'] });
    const url = await bed.serve(config);
    const { feed } = bed;
    assert.equal(feed.caughtUp, true);
    const c = bed.client(url, 'tok-pre');
    await c.ready();
    const got = Object.fromEntries([...c.rows.values()].map((r) => [`${r.windowStart === old ? 'old' : 'recent'}|${r.campaignId}`, r.impressions]));
    assert.deepEqual(got, { 'old|cmp-old': 42, 'recent|cmp-r': 6 + 9, 'recent|cmp-t': 3 });
    const status = await feed.pipelineStatus();
    assert.equal(status.clickhouseReachable, true);
    assert.equal(status.exact, null, 'no partition has published a watermark');
    assert.equal(status.lastTransactionAgeMs, null);
    // No sink ever committed: its lag is exactly what was produced above (partition 0: one row;
    // 1: two rows and a tombstone; none elsewhere), also for records read in their partition's EOF batch.
    const produced = (p: number) => (p === 0 ? 1 : p === 1 ? 3 : 0);
    for (const p of status.partitions) {
      assert.equal(p.aggregatorLag, 0, `partition ${p.partition}`);
      assert.equal(p.sinkLag, produced(p.partition), `partition ${p.partition}: sink lag`);
    }
  });
});
