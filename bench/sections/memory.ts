/**
 * Memory: the Invoke process's resident set when idle, after 10,000 and after 100,000 calls
 * (quick: 1,000 and 2,000), read from its own /metrics. Growth between the two marks that
 * does not level off would be a leak.
 *
 * Each mark is read two ways: at rest right after the mark (one sample), and as the median of
 * samples taken every 250 ms over the last 5,000 calls before it (quick: 500). The old
 * generation grows as a sawtooth between major collections, and one sample lands anywhere on a
 * tooth (heap used at 100,000 calls was 49-131 MB across four runs of the same code). The median
 * smooths the short teeth only: on Postgres the major collections' cycle spans tens of thousands
 * of calls, far more than the two seconds sampled.
 *
 * It runs first, on the process the latency and throughput sections then share: it sees that
 * process from its start, and its calls are their warm-up (a server that has been running).
 */
import { percentiles, runLoad } from '../load.ts';
import { count, governed, mb, processMetrics, type Section } from '../section.ts';

interface Memory {
  rss: number;
  heapUsed: number;
}

async function memoryOf(invokeUrl: string, settleMs: number): Promise<Memory> {
  // Let the last requests' garbage settle a moment: the figure is the process at rest.
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const { rss, heapUsed } = await processMetrics(invokeUrl);
  return { rss, heapUsed };
}

/** Samples the process's RSS every `everyMs` until `until` settles; the samples, in bytes. */
async function sampleRss(invokeUrl: string, until: Promise<unknown>, everyMs: number): Promise<number[]> {
  let running = true;
  const stop = () => (running = false);
  void until.then(stop, stop);
  const samples: number[] = [];
  while (running) {
    samples.push((await processMetrics(invokeUrl)).rss);
    await Promise.race([until, new Promise((resolve) => setTimeout(resolve, everyMs))]);
  }
  return samples;
}

interface Mark extends Memory {
  calls: number;
  perSecond: number;
  /** Median and largest RSS sampled over the last calls before the mark. */
  windowRss: { median: number; max: number; samples: number };
}

export const memorySection: Section = async (ctx) => {
  const marks = ctx.quick ? [1_000, 2_000] : [10_000, 100_000];
  const window = ctx.quick ? 500 : 5_000;
  const settleMs = ctx.quick ? 200 : 500;
  const invoke = await ctx.sharedInvoke();
  const idle = await memoryOf(invoke.url, settleMs);
  const at: Mark[] = [];
  let done = 0;
  const send = (i: number) => governed(invoke.url)(done + i);
  for (const mark of marks) {
    const [t0, from] = [performance.now(), done];
    const before = mark - done - window;
    if (before > 0) {
      const result = await runLoad(send, { concurrency: 16, requests: before });
      if (result.errors > 0) throw new Error(`memory: ${result.errors} errors (${result.firstError})`);
      done += before;
    }
    const last = runLoad(send, { concurrency: 16, requests: mark - done });
    const samples = await sampleRss(invoke.url, last, 250);
    const result = await last;
    if (result.errors > 0) throw new Error(`memory: ${result.errors} errors (${result.firstError})`);
    const perSecond = (mark - from) / ((performance.now() - t0) / 1000);
    done = mark;
    const sampled = percentiles(samples);
    at.push({ calls: mark, perSecond, windowRss: { median: sampled.p50, max: sampled.max, samples: samples.length }, ...(await memoryOf(invoke.url, settleMs)) });
  }
  const [first, last] = [at[0]!, at[at.length - 1]!];
  const row = (name: string, m: Memory, mark?: Mark) => [
    name,
    mb(m.rss),
    mark ? mb(mark.windowRss.median) : '',
    mark ? mb(mark.windowRss.max) : '',
    mb(m.heapUsed),
    (m.rss / idle.rss).toFixed(2),
    mark ? mark.perSecond.toFixed(0) : '',
  ];
  return {
    tables: [
      {
        title: 'Memory of the Invoke process (calls through /v1/call, 16 at a time)',
        columns: ['when', 'RSS MB', `RSS median, last ${count(window)} calls`, 'RSS max, same', 'heap used MB', 'RSS vs idle', 'calls/s'],
        rows: [row('idle, after start (baseline)', idle), ...at.map((m) => row(`after ${count(m.calls)} calls`, m, m))],
        notes: [
          `RSS after ${count(last.calls)} / after ${count(first.calls)} calls: ${(last.rss / first.rss).toFixed(2)} at rest after each mark; ` +
            `${(last.windowRss.median / first.windowRss.median).toFixed(2)} by the medians over the last ${count(window)} calls before each (sampled every 250 ms).`,
        ],
      },
    ],
    data: { idle, at },
  };
};
