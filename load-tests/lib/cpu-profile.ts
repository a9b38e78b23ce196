/**
 * A V8 CPU profile (`node --cpu-prof`, a .cpuprofile file) summarised: self time per function and
 * per area of the code (tally's folders, node's internals, each package), as shares of the busy
 * time (idle excluded), so a profile taken under load says where the event loop's CPU went.
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface FrameShare {
  name: string;
  /** Self time, ms. */
  selfMs: number;
  /** Share of the busy time, 0..1. */
  share: number;
}

export interface ProfileSummary {
  busyMs: number;
  idleMs: number;
  frames: FrameShare[];
  areas: FrameShare[];
}

/** Where a frame's code lives: a tally folder, a package, node's internals, or V8's own pseudo-frames. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  const own = /\/(server\/src\/[^/]+|load-tests|test\/kit)\//.exec(url);
  if (own) return own[1];
  if (url.startsWith('node:')) return 'node internals';
  return url;
}

function frameName(f: ProfileNode['callFrame']): string {
  const file = f.url.replace(/^.*\/(node_modules\/|server\/src\/)/, '$1').replace(/^file:\/\//, '');
  return `${f.functionName || '(anonymous)'} ${file === '' ? '' : `${file}:${f.lineNumber + 1}`}`.trim();
}

function ranked(totals: Map<string, number>, busyMs: number, top: number): FrameShare[] {
  return [...totals].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, selfMs]) => ({ name, selfMs, share: busyMs > 0 ? selfMs / busyMs : 0 }));
}

/** Self time by function and by area, summed over the profiles given (one per run); `top` of each. */
export function summariseProfile(profiles: CpuProfile | CpuProfile[], top = 15): ProfileSummary {
  const frames = new Map<string, number>();
  const areas = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  for (const profile of Array.isArray(profiles) ? profiles : [profiles]) {
    const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    const selfUs = new Map<number, number>();
    profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
    for (const [id, us] of selfUs) {
      const f = byId.get(id);
      if (f === undefined) continue;
      const ms = us / 1000;
      if (f.functionName === '(idle)') {
        idleMs += ms;
        continue;
      }
      busyMs += ms;
      const name = frameName(f);
      frames.set(name, (frames.get(name) ?? 0) + ms);
      const area = areaOf(f.url, f.functionName);
      areas.set(area, (areas.get(area) ?? 0) + ms);
    }
  }
  return { busyMs, idleMs, frames: ranked(frames, busyMs, top), areas: ranked(areas, busyMs, top) };
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

/** The summary as two Markdown tables: areas, then functions (self time). */
export function profileTables(s: ProfileSummary): string {
  return [
    `Busy ${(s.busyMs / 1000).toFixed(1)} s, idle ${(s.idleMs / 1000).toFixed(1)} s (shares below are of the busy time).`,
    '',
    '| area (self time) | ms | share |',
    '|---|---:|---:|',
    ...s.areas.map((a) => `| ${a.name} | ${Math.round(a.selfMs)} | ${pct(a.share)} |`),
    '',
    '| function (self time) | ms | share |',
    '|---|---:|---:|',
    ...s.frames.map((f) => `| \`${f.name}\` | ${Math.round(f.selfMs)} | ${pct(f.share)} |`),
  ].join('\n');
}
