/**
 * `npm run bench`: what Invoke costs, on both stores, each figure next to its baseline measured
 * in the same run on this machine. The tool and Invoke run as processes of their own; this
 * process only generates load and measures.
 *
 *   npm run bench -- --quick                      under a minute on an idle machine
 *   npm run bench -- --store=postgres             postgres | embedded | both (default)
 *   npm run bench -- --only=latency,throughput    latency, throughput, mcp, slack, sweep, traces, pause, memory (and startup, only when named)
 *
 * Postgres: DATABASE_URL when set (the bench creates and drops databases on it), else a
 * throwaway local server (needs the PostgreSQL server binaries). Results: bench/results/.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBuilt, ROOT, startToolProcess, type InvokeProcess } from './processes.ts';
import { latencySvg, printTable, writeJson } from './report.ts';
import { DEFAULT_SECTIONS, SECTIONS, startInvokeWithTool, type ChartPoint, type Section, type SectionContext, type SectionName } from './section.ts';
import { latencySection } from './sections/latency.ts';
import { mcpSection } from './sections/mcp.ts';
import { memorySection } from './sections/memory.ts';
import { pauseSection } from './sections/pause.ts';
import { slackSection } from './sections/slack.ts';
import { startupSection } from './sections/startup.ts';
import { sweepSection } from './sections/sweep.ts';
import { throughputSection } from './sections/throughput.ts';
import { tracesSection } from './sections/traces.ts';
import { openProvider, type StoreKind } from './stores.ts';

const RUNNERS: Record<SectionName, Section> = {
  latency: latencySection,
  throughput: throughputSection,
  mcp: mcpSection,
  slack: slackSection,
  sweep: sweepSection,
  traces: tracesSection,
  pause: pauseSection,
  memory: memorySection,
  startup: startupSection,
};

interface Options {
  quick: boolean;
  stores: StoreKind[];
  sections: SectionName[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, store: { type: 'string', default: 'both' }, only: { type: 'string' } } });
  const store = values.store;
  if (store !== 'both' && store !== 'postgres' && store !== 'embedded') throw new Error(`--store must be postgres, embedded or both (got ${store})`);
  const sections = values.only ? values.only.split(',').map((s) => s.trim()) : [...DEFAULT_SECTIONS];
  const unknown = sections.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (unknown.length > 0) throw new Error(`--only: unknown section ${unknown.join(', ')} (known: ${SECTIONS.join(', ')})`);
  return {
    quick: values.quick,
    stores: store === 'both' ? ['postgres', 'embedded'] : [store],
    // In the documented order, whatever order they were asked in.
    sections: SECTIONS.filter((s) => sections.includes(s)),
  };
}

/**
 * Ctrl-C: stop what would outlive the bench (the Postgres server runs as a daemon, the embedded
 * stores are temp directories), then exit. The Invoke processes get the terminal's SIGINT too.
 */
const onInterrupt = new Set<() => Promise<void>>();

// The official MCP SDK client (section mcp) adds an abort listener per request to a signal of its
// own; past 1,500 Node prints a warning for every request. That is this process's client, not
// Invoke: other warnings still print.
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name !== 'MaxListenersExceededWarning') console.warn(`${warning.name}: ${warning.message}`);
});
process.once('SIGINT', () => {
  void Promise.allSettled([...onInterrupt].map((stop) => stop())).then(() => process.exit(130));
});

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory_gb: Math.round(os.totalmem() / 1024 ** 3),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    // Other work on the machine moves every figure: say how busy it was.
    load_average: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const started = new Date();
  const host = machine();
  console.log(`Invoke bench${options.quick ? ' (quick)' : ''}: ${options.sections.join(', ')} on ${options.stores.join(' and ')}`);
  console.log(`Machine: ${host.cpu}, ${host.cores} cores, ${host.memory_gb} GB, ${host.os}, Node ${host.node}, load average ${host.load_average.join(' ')}`);
  const buildMs = ensureBuilt();
  console.log(`Build (tsc -b tsconfig.build.json): ${(buildMs / 1000).toFixed(1)} s; Invoke runs as node dist/src/server.js`);

  const tool = await startToolProcess();
  onInterrupt.add(tool.stop);
  const results: Array<{ store: string; section: SectionName; seconds: number; data: unknown; tables: unknown }> = [];
  const chart: Array<{ store: string; points: ChartPoint[] }> = [];
  try {
    for (const kind of options.stores) {
      const store = await openProvider(kind);
      onInterrupt.add(store.close);
      console.log(`\n=== ${store.describe} ===`);
      let shared: Promise<InvokeProcess> | undefined;
      const ctx: SectionContext = { store, quick: options.quick, tool, sharedInvoke: () => (shared ??= startInvokeWithTool(ctx)) };
      const stopShared = async () => {
        if (shared) await (await shared).stop();
      };
      const points: ChartPoint[] = [];
      try {
        for (const section of options.sections) {
          const t0 = performance.now();
          const outcome = await RUNNERS[section](ctx);
          const seconds = (performance.now() - t0) / 1000;
          for (const table of outcome.tables) printTable({ ...table, title: `[${kind}] ${table.title}` });
          console.log(`  (${section}: ${seconds.toFixed(1)} s)`);
          results.push({ store: kind, section, seconds, data: outcome.data, tables: outcome.tables });
          points.push(...(outcome.chart ?? []));
        }
      } finally {
        await stopShared();
        await store.close();
        onInterrupt.delete(store.close);
      }
      if (points.length > 0) chart.push({ store: kind, points });
    }
  } finally {
    await tool.stop();
  }

  const dir = path.join(ROOT, 'bench', 'results');
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const file = await writeJson(dir, `${stamp}.json`, { started_at: started.toISOString(), options, machine: host, build_ms: buildMs, results });
  console.log(`\nResults: ${path.relative(ROOT, file)}`);
  if (chart.length > 0) {
    const svg = path.join(dir, 'latency.svg');
    await writeFile(svg, latencySvg(chart));
    console.log(`Chart: ${path.relative(ROOT, svg)}`);
  }
  console.log(`Total: ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
