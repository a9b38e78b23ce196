/**
 * A flame graph in a table: the self time of a V8 .cpuprofile (inspector format) by function and
 * by source file, as shares of all samples. "(idle)" is the JS thread waiting (for librdkafka, a
 * timer, I/O); "(program)" native work outside JS (node-rdkafka's C++ building messages); and
 * "(garbage collector)" what it says.
 */
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
}

export interface ProfileShare {
  what: string;
  share: number;
}

export interface ProfileSummary {
  samples: number;
  byFunction: ProfileShare[];
  byFile: ProfileShare[];
}

/** Where a frame's code lives: tally's file, a package, a node builtin, or V8's own pseudo-frames. */
export function sourceOf(url: string, functionName: string): string {
  if (url === '') return `(${functionName.replace(/^\(|\)$/g, '')})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  const own = /\/((?:server|bench|test)\/.*)$/.exec(url);
  if (own) return own[1];
  return url.replace(/^file:\/\//, '');
}

/** Several profiles (one per run) summed, top `limit` of each table. */
export function summarizeProfiles(profiles: CpuProfile[], limit = 15): ProfileSummary {
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let samples = 0;
  for (const p of profiles) {
    const nodes = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    for (const id of p.samples) {
      const f = nodes.get(id);
      if (f === undefined) continue;
      samples++;
      const file = sourceOf(f.url, f.functionName);
      const fn = f.url === '' ? file : `${f.functionName || '(anonymous)'} ${file.split('/').pop()}:${f.lineNumber + 1}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + 1);
      byFile.set(file, (byFile.get(file) ?? 0) + 1);
    }
  }
  const top = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([what, n]) => ({ what, share: n / samples }));
  return { samples, byFunction: top(byFunction), byFile: top(byFile) };
}
