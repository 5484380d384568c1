/**
 * The first call after a pause: agents call in bursts, so the call after a quiet spell is a
 * common one. Each round pauses, then times one call; the tool called directly and through
 * /v1/call pause separately, so neither wakes the machine for the other. The pause outlasts
 * pg-pool's idle timeout (10 s), which used to close every connection: that call then paid a new
 * connection and its statements prepared again. Skipped with --quick (each round is a pause).
 */
import { percentiles } from '../load.ts';
import { direct, governed, ms, plus, warmUp, type Section } from '../section.ts';

const PAUSE_MS = 11_000;
const ROUNDS = 3;

const pause = () => new Promise((resolve) => setTimeout(resolve, PAUSE_MS));

/** Times `calls` calls one after another, right after a pause. */
async function afterPause(send: (i: number) => Promise<number>, calls: number): Promise<number[]> {
  await pause();
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    const status = await send(i);
    if (status !== 200) throw new Error(`pause: a call answered ${status}`);
    times.push(performance.now() - started);
  }
  return times;
}

const TITLE = `The first call after a ${PAUSE_MS / 1000} s pause (median of ${ROUNDS} pauses)`;
const COLUMNS = ['path', 'first call ms', 'the call after it ms'];

export const pauseSection: Section = async (ctx) => {
  if (ctx.quick) {
    const skipped = `Skipped with --quick: it pauses ${PAUSE_MS / 1000} s ${ROUNDS * 2} times.`;
    return { tables: [{ title: TITLE, columns: COLUMNS, rows: [], notes: [skipped] }], data: { skipped: 'quick' } };
  }
  const invoke = await ctx.sharedInvoke();
  await warmUp(direct(ctx.tool.url), 500);
  await warmUp(governed(invoke.url), 500);
  const rounds: Array<{ direct: number[]; governed: number[] }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    rounds.push({ direct: await afterPause(direct(ctx.tool.url), 2), governed: await afterPause(governed(invoke.url), 2) });
  }
  const median = (pick: (round: (typeof rounds)[number]) => number) => percentiles(rounds.map(pick)).p50;
  const first = { direct: median((r) => r.direct[0]!), governed: median((r) => r.governed[0]!) };
  const second = { direct: median((r) => r.direct[1]!), governed: median((r) => r.governed[1]!) };
  return {
    tables: [
      {
        title: TITLE,
        columns: COLUMNS,
        rows: [
          ['tool called directly (baseline)', ms(first.direct), ms(second.direct)],
          ['through /v1/call', ms(first.governed), ms(second.governed)],
          ['added by Invoke', plus(first.governed, first.direct), plus(second.governed, second.direct)],
        ],
        notes: ['A pause costs the machine too (the direct call after one is slower than at concurrency 1): the added row is what Invoke adds to it.'],
      },
    ],
    data: { pauseMs: PAUSE_MS, rounds, first, second },
  };
};
