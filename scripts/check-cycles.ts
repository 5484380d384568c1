/**
 * Folder-level import graph of src/: prints each capability folder's dependencies and fails
 * (exit 1) when folders import each other in a cycle. Files at the top of src/ count as their
 * own node (app, config, errors, server). Type-only imports count too: a cycle of types is
 * still two folders that cannot be read apart.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const SRC = resolve(import.meta.dirname, '..', 'src');
const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]/gm;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** `calls` for src/calls/x.ts, `app` for src/app.ts. */
function nodeOf(file: string): string {
  // Entry points (server, CLIs) compose everything: they sit above the graph, like app.ts.
  if (/-cli\.ts$/.test(file)) return 'cli';
  const parts = relative(SRC, file).split(sep);
  return parts.length > 1 ? parts[0]! : parts[0]!.replace(/\.ts$/, '');
}

const edges = new Map<string, Set<string>>();
for (const file of filesUnder(SRC)) {
  const from = nodeOf(file);
  const targets = edges.get(from) ?? edges.set(from, new Set()).get(from)!;
  for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const to = nodeOf(resolve(dirname(file), match[1]!));
    if (to !== from) targets.add(to);
  }
}

/** Strongly connected components with more than one folder (Tarjan). */
function cycles(): string[][] {
  let index = 0;
  const stack: string[] = [];
  const info = new Map<string, { index: number; low: number; onStack: boolean }>();
  const found: string[][] = [];
  const visit = (v: string) => {
    info.set(v, { index, low: index, onStack: true });
    index++;
    stack.push(v);
    for (const w of edges.get(v) ?? []) {
      if (!info.has(w)) {
        visit(w);
        info.get(v)!.low = Math.min(info.get(v)!.low, info.get(w)!.low);
      } else if (info.get(w)!.onStack) info.get(v)!.low = Math.min(info.get(v)!.low, info.get(w)!.index);
    }
    if (info.get(v)!.low === info.get(v)!.index) {
      const component: string[] = [];
      for (let w = stack.pop()!; ; w = stack.pop()!) {
        info.get(w)!.onStack = false;
        component.push(w);
        if (w === v) break;
      }
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!info.has(v)) visit(v);
  return found;
}

for (const [from, to] of [...edges].sort(([a], [b]) => a.localeCompare(b))) console.log(`${from} -> ${[...to].sort().join(', ') || '(nothing)'}`);
const found = cycles();
for (const component of found) console.log(`cycle: ${component.join(' <-> ')}`);
console.log(found.length === 0 ? 'no cycles between folders' : `${found.length} cycle(s) between folders`);
process.exitCode = found.length === 0 ? 0 : 1;
