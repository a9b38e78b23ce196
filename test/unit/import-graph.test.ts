/**
 * The folder → folder import graph of server/src, kept one-way.
 *
 * A node is a top-level folder under server/src (`aggregator`, `api`, `contracts`…); a file at the
 * root (`cli.ts`, the entry point) is the node `root`. The rules:
 *
 * - no two folders import each other (the graph may fan in and out, never back), and no longer
 *   loop either (a → b → c → a): the folders form a DAG, with the entry point (`root`) on top and
 *   `contracts/` and `errors/` at the bottom;
 * - nothing under server/src imports from outside it (test/, bench/, load-tests/, web/…);
 * - `tools/` (generate, verify, reconcile, the DLQ reader: dev and operator tools) is imported by
 *   `cli/` only, never by a runtime part. A format both a tool and a runtime part read lives in
 *   `contracts/`.
 *
 * Imports are found by a regex over each statement that starts a line with `import` or `export`
 * and has a `from '…'` (type-only imports included: a type is as much a dependency as a value),
 * and over bare `import '…'`.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../server/src');
const ROOT = 'root';
/** The only folder allowed to import `tools/`. */
const TOOLS_IMPORTERS = new Set(['cli']);

const IMPORT = /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;

interface Edge { from: string; to: string; file: string; specifier: string }

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** `root` for a file directly in server/src, else its top-level folder; `../test` etc. outside server/src. */
function nodeOf(path: string): string {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return `../${relative(resolve(SRC, '../..'), path).split(sep)[0]}`;
  const parts = rel.split(sep);
  return parts.length === 1 ? ROOT : parts[0];
}

function importEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const specifier = m[1] ?? m[2];
      if (!specifier.startsWith('.')) continue;
      const from = nodeOf(file);
      const to = nodeOf(resolve(dirname(file), specifier));
      if (from !== to) edges.push({ from, to, file: relative(SRC, file), specifier });
    }
  }
  return edges;
}

function adjacency(edges: Edge[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const e of edges) out.set(e.from, (out.get(e.from) ?? new Set()).add(e.to));
  return out;
}

function graphText(edges: Edge[]): string {
  const out = adjacency(edges);
  return [...out.keys()].sort()
    .map((from) => `  ${from} → ${[...out.get(from) ?? []].sort().join(', ')}`)
    .join('\n');
}

/** A folder loop (first → … → first), or null when the graph is a DAG. */
function findCycle(edges: Edge[]): string[] | null {
  const out = adjacency(edges);
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (node: string): string[] | null => {
    const at = path.indexOf(node);
    if (at >= 0) return [...path.slice(at), node];
    if (done.has(node)) return null;
    path.push(node);
    for (const next of [...out.get(node) ?? []].sort()) {
      const cycle = visit(next);
      if (cycle !== null) return cycle;
    }
    path.pop();
    done.add(node);
    return null;
  };
  for (const node of [...out.keys()].sort()) {
    const cycle = visit(node);
    if (cycle !== null) return cycle;
  }
  return null;
}

function filesOf(edges: Edge[], from: string, to: string): string {
  return edges.filter((e) => e.from === from && e.to === to).map((e) => `${e.file} ('${e.specifier}')`).join(', ');
}

describe('server/src import graph', () => {
  const edges = importEdges();
  const graph = `folder graph:\n${graphText(edges)}`;

  it('finds the imports it checks', () => {
    // Guards the regex: a graph with no edges would pass every rule below.
    assert.ok(edges.some((e) => e.from === 'api' && e.to === 'auth'), graph);
    assert.ok(edges.some((e) => e.from === ROOT && e.to === 'cli'), graph);
  });

  it('has no two folders importing each other', () => {
    const pairs = new Set(edges.map((e) => `${e.from}\0${e.to}`));
    const twoWay = [...pairs]
      .map((p) => p.split('\0'))
      .filter(([a, b]) => a < b && pairs.has(`${b}\0${a}`))
      .map(([a, b]) => `  ${a} ↔ ${b}\n    ${a} → ${b}: ${filesOf(edges, a, b)}\n    ${b} → ${a}: ${filesOf(edges, b, a)}`);
    assert.deepEqual(twoWay, [], `two-way folder links:\n${twoWay.join('\n')}\n${graph}`);
  });

  it('has no longer folder loops either', () => {
    const cycle = findCycle(edges);
    const detail = cycle === null ? '' : cycle.slice(1).map((to, i) => `    ${cycle[i]} → ${to}: ${filesOf(edges, cycle[i], to)}`).join('\n');
    assert.equal(cycle, null, `folder loop ${cycle?.join(' → ')}:\n${detail}\n${graph}`);
  });

  it('imports nothing from outside server/src, and tools/ only from cli/', () => {
    const bad = edges
      .filter((e) => e.to.startsWith('../') || (e.to === 'tools' && !TOOLS_IMPORTERS.has(e.from)))
      .map((e) => `  ${e.file} imports '${e.specifier}' (${e.from} → ${e.to})`);
    assert.deepEqual(bad, [], `forbidden imports:\n${bad.join('\n')}\n${graph}`);
  });
});
