// The blast-radius demo: seven production failure modes, each run twice, by a naive agent loop
// calling the tool directly and by the same loop calling it through Invoke. Everything runs on
// 127.0.0.1 with ports chosen by the OS: the mock tools (demo/mocks), the Slack Web API emulator,
// and Invoke itself (in-process, on a throwaway in-memory store). Side effects are counted at the
// mocks and the emulator, never inferred.
//
//   npx tsx demo/run-demo.ts        (or demo/run_demo.sh; FLAKY_FAIL_FIRST_N=3 to change the flaky tool)
//
// The parts, by job: results.ts (what a run produces), agent.ts (the agent's HTTP loop),
// environment.ts (what the demo starts), scenarios/ (the seven scenarios), report.ts (the table);
// this file runs the scenarios in order and is the CLI.
import { pathToFileURL } from 'node:url';
import { resetMocks, startEnvironment, type Stopper } from './environment.ts';
import { formatTable } from './report.ts';
import { DemoInterrupted, type DemoOptions, type DemoResult, type ScenarioResult } from './results.ts';
import { SCENARIOS } from './scenarios/index.ts';
import type { Ctx } from './scenarios/scenario.ts';

export { formatTable } from './report.ts';
export { DemoInterrupted, type DemoOptions, type DemoResult, type InvokeRunResult, type Measure, type RunResult, type ScenarioResult } from './results.ts';
export { SCENARIOS } from './scenarios/index.ts';

// ---------------------------------------------------------------------------------------------
// runDemo

function defaultFailFirstN(): number {
  const raw = process.env['FLAKY_FAIL_FIRST_N'];
  if (raw === undefined || raw.trim() === '') return 2;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 20) throw new Error(`FLAKY_FAIL_FIRST_N must be an integer from 0 to 20, got "${raw}"`);
  return n;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const flakyFailFirstN = options.flakyFailFirstN ?? defaultFailFirstN();
  const agentTimeoutMs = options.agentTimeoutMs ?? 1_500;
  const controller = new AbortController();
  const stoppers: Stopper[] = [];
  // Stops in reverse start order; called again at the end, it also stops what was started after
  // an interruption (a start that was under way when Ctrl-C came).
  const stopAll = async () => {
    for (let next = stoppers.pop(); next; next = stoppers.pop()) {
      const { name, stop } = next;
      await stop().catch((error: unknown) => log(`  (stopping ${name} failed: ${(error as Error).message})`));
    }
  };
  const onAbort = () => {
    controller.abort();
    void stopAll();
  };
  if (options.signal?.aborted) throw new DemoInterrupted();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const scenarios: ScenarioResult[] = [];
  const slackThread: string[] = [];
  try {
    log(`Starting the mock tools, the Slack emulator and Invoke on 127.0.0.1 (flaky tool stalls on its first ${flakyFailFirstN} calls)...`);
    const env = await startEnvironment(flakyFailFirstN, stoppers);
    if (controller.signal.aborted) throw new DemoInterrupted();
    log(`Invoke is listening at ${env.invokeUrl}; running ${SCENARIOS.length} scenarios, each without and with Invoke.`);
    const ctx: Ctx = { env, timeoutMs: agentTimeoutMs, signal: controller.signal, slackThread };
    for (const scenario of SCENARIOS) {
      const result: ScenarioResult = { id: scenario.id, title: scenario.title, measures: scenario.measures, naive: null, invoke: null };
      scenarios.push(result);
      const began = Date.now();
      try {
        resetMocks(env);
        result.naive = await scenario.naive(ctx);
        resetMocks(env);
        result.invoke = await scenario.invoke(ctx);
        log(`  ${scenario.id}/${SCENARIOS.length} ${scenario.title}: done in ${((Date.now() - began) / 1000).toFixed(1)} s`);
      } catch (error) {
        if (controller.signal.aborted) throw new DemoInterrupted();
        result.error = (error as Error).message;
        log(`  ${scenario.id}/${SCENARIOS.length} ${scenario.title}: could not run: ${result.error}`);
      }
    }
    resetMocks(env);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await stopAll();
  }
  if (controller.signal.aborted) throw new DemoInterrupted();
  return {
    ok: scenarios.length === SCENARIOS.length && scenarios.every((s) => !s.error),
    flakyFailFirstN,
    agentTimeoutMs,
    durationMs: Date.now() - started,
    scenarios,
    slackThread,
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

async function main(): Promise<number> {
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping everything the demo started...\n`);
    controller.abort();
    // If something refuses to stop, do not hang the terminal.
    setTimeout(() => process.exit(130), 5_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await runDemo({ signal: controller.signal, log: (line) => process.stdout.write(`${line}\n`) });
    process.stdout.write(`\n${formatTable(result)}\n`);
    return result.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof DemoInterrupted) {
      process.stderr.write(`${error.message}\n`);
      return 130;
    }
    process.stderr.write(`The demo could not run: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  main().then(
    (code) => process.exit(code),
    () => process.exit(1),
  );
}
