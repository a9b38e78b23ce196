import assert from 'node:assert/strict';
import { areaOf, summariseProfile, type CpuProfile } from '../../load-tests/lib/cpu-profile.js';

const frame = (id: number, functionName: string, url: string, lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber } });

describe('CPU profile summary (bench --profile, load --profile-api)', () => {
  it('names where a frame lives: a tally folder, a package, node, or V8\'s pseudo-frame', () => {
    assert.equal(areaOf('file:///w/server/src/impression/scan-impression.ts', 'scanImpression'), 'server/src/impression');
    assert.equal(areaOf('/w/node_modules/@clickhouse/client/dist/x.js', 'f'), '@clickhouse/client');
    assert.equal(areaOf('node:buffer', 'slice'), 'node internals');
    assert.equal(areaOf('', '(garbage collector)'), '(garbage collector)');
  });

  it('sums self time over several profiles; idle apart, shares of the busy time, largest first', () => {
    const scan = 'file:///w/server/src/impression/scan-impression.ts';
    const a: CpuProfile = {
      nodes: [frame(1, '(idle)', ''), frame(2, 'scanImpression', scan, 9), frame(3, 'count', 'file:///w/server/src/aggregator/core/window-store.ts')],
      samples: [1, 2, 2, 3], timeDeltas: [4000, 1000, 1000, 1000],
    };
    const b: CpuProfile = { nodes: [frame(7, 'scanImpression', scan, 9)], samples: [7], timeDeltas: [2000] };
    const s = summariseProfile([a, b], 5);
    assert.equal(s.idleMs, 4);
    assert.equal(s.busyMs, 5);
    assert.deepEqual(s.frames[0], { name: 'scanImpression server/src/impression/scan-impression.ts:10', selfMs: 4, share: 0.8 });
    assert.deepEqual(s.areas.map((x) => x.name), ['server/src/impression', 'server/src/aggregator']);
  });
});
