/**
 * Start-up: time from spawn to the first 200 from /health, and resident memory when idle, for
 * `npm start` (node on the compiled dist/) against `npm run dev` (tsx compiling on the fly, as
 * `npm start` did before). Memory counts the whole process tree: the tsx CLI runs the server in
 * a child process of its own.
 */
import { percentiles } from '../load.ts';
import { startInvokeProcess, treeRssBytes, type Runtime } from '../processes.ts';
import { mb, ms, ratio, type Section } from '../section.ts';

const SETTLE_MS = 2_000;

export const startupSection: Section = async (ctx) => {
  const rounds = ctx.quick ? 1 : 3;
  const runtimes: Runtime[] = ['compiled', 'tsx'];
  const samples: Record<Runtime, Array<{ readyMs: number; rss: number }>> = { compiled: [], tsx: [] };
  // Alternate, so a change in the machine's load touches both alike.
  for (let round = 0; round < rounds; round++) {
    for (const runtime of runtimes) {
      const database = await ctx.store.fresh();
      const invoke = await startInvokeProcess({ storeEnv: database.env, runtime });
      try {
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        samples[runtime].push({ readyMs: invoke.readyMs, rss: treeRssBytes(invoke.pid) });
      } finally {
        await invoke.stop();
      }
    }
  }
  const median = (runtime: Runtime) => ({
    readyMs: percentiles(samples[runtime].map((s) => s.readyMs)).p50,
    rss: percentiles(samples[runtime].map((s) => s.rss)).p50,
  });
  const [compiled, tsx] = [median('compiled'), median('tsx')];
  return {
    tables: [
      {
        title: `Start-up on an existing, migrated database (median of ${rounds})`,
        columns: ['how', 'ready ms', 'idle RSS MB'],
        rows: [
          ['tsx src/server.ts (npm run dev; baseline)', ms(tsx.readyMs), mb(tsx.rss)],
          ['node dist/src/server.js (npm start)', ms(compiled.readyMs), mb(compiled.rss)],
          ['compiled vs tsx', ratio(compiled.readyMs, tsx.readyMs), ratio(compiled.rss, tsx.rss)],
        ],
        notes: ['Ready: spawn to the first 200 from /health. RSS: the whole process tree, 2 s after ready.'],
      },
    ],
    data: { rounds, samples, compiled, tsx },
  };
};
