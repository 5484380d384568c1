// The agent's side: plain HTTP with a client timeout, and a loop that retries once on a timeout,
// the same loop whether it calls a tool directly or through Invoke.
import { DemoInterrupted } from './results.ts';

export class AgentTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = 'AgentTimeout';
  }
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: any;
}

export async function httpJson(method: string, url: string, body: unknown, timeoutMs: number, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') throw new AgentTimeout(`${method} ${new URL(url).pathname}`, timeoutMs);
    throw error;
  }
}

export type AttemptResult<T> = { kind: 'answer'; value: T } | { kind: 'ask_again'; why: string };

export interface LoopOutcome<T> {
  value?: T;
  /** Requests the loop sent. */
  requests: number;
  /** What went wrong on the way (timeouts, errors), in order. */
  failures: string[];
}

/**
 * The agent loop both runs share: one attempt, and on a timeout or error one immediate retry
 * with the same request, as a hand-written agent does. "Ask again" (Invoke's 409 for a key still
 * in flight) waits a moment and asks again without spending the retry.
 */
export async function agentLoop<T>(attempt: () => Promise<AttemptResult<T>>, signal: AbortSignal): Promise<LoopOutcome<T>> {
  const maxAttempts = 2;
  const failures: string[] = [];
  let requests = 0;
  let failed = 0;
  let askedAgain = 0;
  while (failed < maxAttempts && askedAgain < 40) {
    if (signal.aborted) throw new DemoInterrupted();
    requests += 1;
    try {
      const result = await attempt();
      if (result.kind === 'answer') return { value: result.value, requests, failures };
      askedAgain += 1;
      failures.push(result.why);
      await sleep(250, signal);
    } catch (error) {
      if (error instanceof DemoInterrupted) throw error;
      failed += 1;
      failures.push((error as Error).message);
    }
  }
  return { requests, failures };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new DemoInterrupted());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DemoInterrupted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, signal: AbortSignal, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25, signal);
  }
}
