import assert from 'node:assert/strict';
import { sourceOf, summarizeProfiles, type CpuProfile } from '../../bench/lib/cpu-profile-summary.js';

const frame = (id: number, functionName: string, url: string, lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber } });

describe('bench: CPU profile summary', () => {
  it('names where a frame lives: tally\'s file, a package, a builtin, or V8\'s pseudo-frame', () => {
    assert.equal(sourceOf('file:///work/x/server/src/impression/scan-impression.ts', 'scanImpression'), 'server/src/impression/scan-impression.ts');
    assert.equal(sourceOf('/work/x/node_modules/node-rdkafka/lib/kafka-consumer.js', '_consumeNum'), 'node-rdkafka');
    assert.equal(sourceOf('/work/x/node_modules/@clickhouse/client/dist/x.js', 'f'), '@clickhouse/client');
    assert.equal(sourceOf('node:buffer', 'slice'), 'node:buffer');
    assert.equal(sourceOf('', '(garbage collector)'), '(garbage collector)');
  });

  it('sums self time over profiles, as shares of every sample, largest first', () => {
    const a: CpuProfile = {
      nodes: [frame(1, '(idle)', ''), frame(2, 'scanImpression', 'file:///r/server/src/impression/scan-impression.ts', 9), frame(3, 'count', 'file:///r/server/src/aggregator/core/window-store.ts')],
      samples: [1, 1, 2, 2, 2, 3],
    };
    const b: CpuProfile = { nodes: [frame(7, 'scanImpression', 'file:///r/server/src/impression/scan-impression.ts', 9)], samples: [7, 7] };
    const s = summarizeProfiles([a, b], 2);
    assert.equal(s.samples, 8);
    assert.deepEqual(s.byFunction, [{ what: 'scanImpression scan-impression.ts:10', share: 5 / 8 }, { what: '(idle)', share: 2 / 8 }]);
    assert.deepEqual(s.byFile[0], { what: 'server/src/impression/scan-impression.ts', share: 5 / 8 });
  });
});
