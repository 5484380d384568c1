/**
 * The processes under test. The tool and Invoke each run in a process of their own, so the load
 * generator's CPU is never counted inside Invoke (and Invoke's never inside the baseline).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { get } from './load.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const API_KEY = 'bench-key';
const READY_TIMEOUT_MS = 180_000;

/** `npm run build` (incremental: a no-op when dist/ is current). Returns how long it took. */
export function ensureBuilt(): number {
  const started = performance.now();
  const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
  const result = spawnSync(tsc, ['-b', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`build failed:\n${result.stdout}${result.stderr}`);
  return performance.now() - started;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

export interface Running {
  url: string;
  pid: number;
  /** A closure, safe to pass around on its own (the bench keeps it in its interrupt handlers). */
  stop: () => Promise<void>;
}

/** Keeps the last lines a child wrote, to explain a failed start. */
function tail(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
}

/** The tool: a node:http server on loopback that answers every request at once. */
export async function startToolProcess(): Promise<Running> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join('bench', 'tool-server.ts')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = tail(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (chunk: Buffer) => resolve(Number(/port=(\d+)/.exec(chunk.toString())?.[1])));
    child.once('exit', (code) => reject(new Error(`tool server exited (${code}): ${output()}`)));
  });
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: stopper(child) };
}

/** BENCH_CPU_PROF=<dir>: node's arguments, with each process writing a V8 CPU profile there when it stops. */
function profiled(args: string[]): string[] {
  const profileDir = process.env['BENCH_CPU_PROF'];
  return profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, ...args] : args;
}

/** `compiled` is what `npm start` runs; `tsx` is what `npm run dev` runs. */
export type Runtime = 'compiled' | 'tsx';

const COMMANDS: Record<Runtime, [string, string[]]> = {
  compiled: [process.execPath, [path.join('dist', 'src', 'server.js')]],
  tsx: [path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join('src', 'server.ts')]],
};

/** The environment Invoke gets: ours, plus the caller's own except Invoke settings it did not mean to pass. */
function invokeEnv(storeEnv: Record<string, string>, extra: Record<string, string>, port: number): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      // Rate limits would throttle the load itself: INVOKE_RATE_LIMIT_* set for the bench pass through.
      ([name]) => name.startsWith('INVOKE_RATE_LIMIT_') || !/^(INVOKE_|SLACK_|TRACE_|DATABASE_URL$|PORT$|HOST$|LOG_LEVEL$)/.test(name),
    ),
  );
  return {
    // The bench measures overhead, not limits: off unless the caller sets them.
    INVOKE_RATE_LIMIT_PER_KEY: '0',
    INVOKE_RATE_LIMIT_PER_ADDRESS: '0',
    ...inherited,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    INVOKE_API_KEYS: API_KEY,
    INVOKE_SWEEP_CRON: 'off',
    ...storeEnv,
    ...extra,
  };
}

export interface InvokeProcess extends Running {
  /** Milliseconds from spawn to the first 200 from /health. */
  readyMs: number;
}

/** Starts Invoke as its own process and waits until /health answers 200. */
export async function startInvokeProcess(options: { storeEnv: Record<string, string>; env?: Record<string, string>; runtime?: Runtime }): Promise<InvokeProcess> {
  const port = await freePort();
  const [command, commandArgs] = COMMANDS[options.runtime ?? 'compiled'];
  const args = command === process.execPath ? profiled(commandArgs) : commandArgs;
  const started = performance.now();
  const child = spawn(command, args, { cwd: ROOT, env: invokeEnv(options.storeEnv, options.env ?? {}, port), stdio: ['ignore', 'pipe', 'pipe'] });
  const output = tail(child);
  const url = `http://127.0.0.1:${port}`;
  const stop = stopper(child);
  let exited = false;
  child.once('exit', () => (exited = true));
  while (performance.now() - started < READY_TIMEOUT_MS) {
    if (exited) throw new Error(`Invoke exited before it was ready:\n${output()}`);
    const status = await get(`${url}/health`).catch(() => 0);
    if (status === 200) return { url, pid: child.pid!, readyMs: performance.now() - started, stop };
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  await stop();
  throw new Error(`Invoke was not ready after ${READY_TIMEOUT_MS / 1000}s:\n${output()}`);
}

/** How long a sweep process may take before the bench gives up on it. */
const SWEEP_TIMEOUT_MS = 10 * 60_000;

/**
 * One sweep pass in a process of its own (`npm run sweep`'s compiled CLI) on the given store:
 * what an operator's scheduled pass does, beside the server. `started` resolves when the pass
 * begins (the process is up and connected); `done` to the pass's own timing and counts as it
 * prints them (`sweep pass (N ms): expired=... errors=...`). A process still running after
 * SWEEP_TIMEOUT_MS is killed and `done` rejects.
 */
export function startSweepProcess(storeEnv: Record<string, string>): { started: Promise<void>; done: Promise<{ ms: number; counts: Record<string, number> }> } {
  const child = spawn(process.execPath, profiled([path.join('dist', 'src', 'sweeps', 'sweep-cli.js')]), {
    cwd: ROOT,
    env: invokeEnv(storeEnv, {}, 0),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = tail(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const started = new Promise<void>((resolve, reject) => {
    const watch = () => {
      if (!output().includes('sweep: starting one pass')) return;
      child.stdout?.off('data', watch);
      resolve();
    };
    child.stdout?.on('data', watch);
    void exited.then(() => reject(new Error(`sweep process exited before its pass began:\n${output()}`)));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), SWEEP_TIMEOUT_MS);
  const done = exited.then((code) => {
    clearTimeout(timer);
    const match = /sweep pass \((\d+) ms\): (.*)/.exec(output());
    if (code !== 0 || !match) throw new Error(`sweep process exited (${code}):\n${output()}`);
    const counts = Object.fromEntries(
      match[2]!
        .trim()
        .split(' ')
        .map((pair) => [pair.split('=')[0]!, Number(pair.split('=')[1])]),
    );
    return { ms: Number(match[1]), counts };
  });
  // Whoever awaits only `done` must not see `started`'s rejection as unhandled.
  started.catch(() => undefined);
  return { started, done };
}

/** Resident memory of a process and all its descendants (the tsx CLI runs the server in a child). */
export function treeRssBytes(pid: number): number {
  const table = execFileSync('ps', ['-A', '-o', 'pid=,ppid=,rss='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number, number]);
  const inTree = new Set([pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, parent] of table) {
      if (inTree.has(parent) && !inTree.has(p)) {
        inTree.add(p);
        grew = true;
      }
    }
  }
  return table.filter(([p]) => inTree.has(p)).reduce((sum, [, , rssKb]) => sum + rssKb * 1024, 0);
}
