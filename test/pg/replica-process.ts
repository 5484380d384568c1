import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/**
 * Real Invoke server processes for the cross-process tests: spawn `serve-replica.ts`, talk to it
 * over real HTTP, stop it gracefully or kill it hard, and run `npm run sweep` as its own process.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
/** How long a replica may take to report its port, and a sweep pass to exit. */
export const START_TIMEOUT_MS = 20_000;
/** The timeout of one request made with {@link http}. */
export const REQUEST_TIMEOUT_MS = 10_000;

export interface Replica {
  child: ChildProcess;
  port: number;
  stderr: () => string;
}

export interface SpawnOptions {
  /** Every spawned process is added here and removed once it exits, so `afterAll` can stop the rest. */
  track?: Set<ChildProcess>;
}

function tracked(child: ChildProcess, options: SpawnOptions): void {
  const { track } = options;
  if (!track) return;
  track.add(child);
  child.once('exit', () => track.delete(child));
}

/** Spawns `serve-replica.ts` and resolves with its port once it prints `{"port": N}`. */
export function spawnReplica(env: Record<string, string>, options: SpawnOptions = {}): Promise<Replica> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/pg/serve-replica.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  tracked(child, options);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_000);
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`replica ${why}\nstderr:\n${stderr}\nstdout:\n${stdout}`));
    };
    const timer = setTimeout(() => fail(`did not report a port within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    const onExit = (code: number | null, signal: string | null) => fail(`exited before listening (code ${code}, signal ${signal})`);
    child.once('error', (error) => fail(`could not be spawned: ${error.message}`));
    child.once('exit', onExit);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      for (const line of stdout.split('\n')) {
        if (!line.trim().startsWith('{')) continue;
        try {
          const { port } = JSON.parse(line) as { port?: unknown };
          if (typeof port !== 'number') continue;
          clearTimeout(timer);
          child.removeListener('exit', onExit);
          child.removeAllListeners('error');
          resolve({ child, port, stderr: () => stderr });
          return;
        } catch {
          // a partial line: wait for the rest
        }
      }
    });
  });
}

export interface SweepRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs `npm run sweep` (one pass, then exit) as its own process; resolves with its exit code and output. */
export function runSweepCli(env: Record<string, string>, options: SpawnOptions = {}): Promise<SweepRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/sweeps/sweep-cli.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  tracked(child, options);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-8_000)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sweep pass did not exit within ${START_TIMEOUT_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, START_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited within 3 s. Never throws, never hangs. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
  clearTimeout(timer);
}

/** `kill -9`: no shutdown hook, no final write; resolves once the process is gone. */
export async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
}

export interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

/** One real HTTP request to a replica, JSON in and out, with a timeout; `key` goes in `x-api-key`. */
export async function http(port: number, method: 'GET' | 'POST', url: string, key: string, body?: unknown): Promise<Answer> {
  const response = await fetch(`http://127.0.0.1:${port}${url}`, {
    method,
    headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  let parsed: any;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** Polls `check` until it holds, failing with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
