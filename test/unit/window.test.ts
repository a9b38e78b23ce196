import assert from 'node:assert/strict';
import { windowStartOf } from '../../server/src/aggregator/core/index.js';
import { parseRowKey, rowKey } from '../../server/src/contracts/count-record.js';

describe('windows and row keys', () => {
  it('windowStartOf floors to multiples of the window size', () => {
    assert.equal(windowStartOf(1764150000123, 60_000), 1764150000000 - (1764150000000 % 60_000));
    assert.equal(windowStartOf(120_000, 60_000), 120_000);
    assert.equal(windowStartOf(179_999, 60_000), 120_000);
    assert.equal(windowStartOf(1, 1000), 0);
    assert.equal(windowStartOf(1999, 1000), 1000);
    assert.equal(windowStartOf(2000, 1000), 2000);
  });

  it('windowStartOf is exact at the top of the ms range', () => {
    assert.equal(windowStartOf(8.64e15, 60_000), 8.64e15);
    assert.equal(windowStartOf(8.64e15 - 1, 60_000), 8.64e15 - 60_000);
    assert.equal(windowStartOf(Number.MAX_SAFE_INTEGER, 7), Number.MAX_SAFE_INTEGER - (Number.MAX_SAFE_INTEGER % 7));
  });

  it('windowStartOf floors negative times too', () => {
    assert.equal(windowStartOf(-1, 1000), -1000);
    assert.equal(windowStartOf(-1000, 1000), -1000);
  });

  it('rowKey joins the parts with |, and parseRowKey inverts it', () => {
    const key = rowKey(1764150000000, 'adv-42', 'cmp:7', 3);
    assert.equal(key, '1764150000000|adv-42|cmp:7|3');
    assert.deepEqual(parseRowKey(key), { windowStart: 1764150000000, advertiserId: 'adv-42', campaignId: 'cmp:7', sourcePartition: 3 });
  });

  it('parseRowKey refuses keys rowKey cannot produce', () => {
    for (const bad of ['watermark|3', '1|a|b', '1|a|b|c|2', 'x|a|b|1', '1|a|b|-1', '1||b|1', '1|a|b|', ' 1|a|b|1', '0x10|a|b|1', '1|a|b|1e1']) {
      assert.throws(() => parseRowKey(bad), /not a row key/, bad);
    }
  });
});
