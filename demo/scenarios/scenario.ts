// What a scenario is (a naive run and a run through Invoke, each measured at the mocks) and the
// calls both runs are made of.
import { agentLoop, httpJson, type AttemptResult, type HttpAnswer } from '../agent.ts';
import { AGENT, type Environment } from '../environment.ts';
import type { InvokeRunResult, Measure, RunResult } from '../results.ts';

export interface Ctx {
  env: Environment;
  timeoutMs: number;
  signal: AbortSignal;
  slackThread: string[];
}

/** The same agent request, sent to Invoke's /v1/call. 409 "still in flight" means: ask again. */
export function invokeCall(ctx: Ctx, body: Record<string, unknown>) {
  return async (): Promise<AttemptResult<HttpAnswer>> => {
    const res = await httpJson('POST', `${ctx.env.invokeUrl}/v1/call`, { agent_id: AGENT, ...body }, ctx.timeoutMs, { 'x-api-key': ctx.env.apiKey });
    if (res.status === 409 && res.body?.error?.code === 'idempotency_key_in_flight') return { kind: 'ask_again', why: '409 idempotency_key_in_flight' };
    if (res.status >= 500) throw new Error(`Invoke answered ${res.status}`);
    if (res.status >= 400) throw new Error(`Invoke refused the call: ${res.status} ${JSON.stringify(res.body?.error ?? res.body)}`);
    return { kind: 'answer', value: res };
  };
}

export async function invokeOnce(ctx: Ctx, body: Record<string, unknown>): Promise<HttpAnswer> {
  const loop = await agentLoop(invokeCall(ctx, body), ctx.signal);
  if (!loop.value) throw new Error(`no answer from Invoke: ${loop.failures.join('; ')}`);
  return loop.value;
}

/** A direct call to a mock tool over HTTP: 5xx and timeouts throw (the loop retries them). */
export function direct(ctx: Ctx, method: string, url: string, body?: unknown) {
  return async (): Promise<AttemptResult<HttpAnswer>> => {
    const res = await httpJson(method, url, body, ctx.timeoutMs);
    if (res.status >= 500) throw new Error(`${method} ${new URL(url).pathname} answered ${res.status}`);
    return { kind: 'answer', value: res };
  };
}

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
export const failedSummary = (what: string, failures: string[]) => `${what} (${plural(failures.length, 'failure')}: ${failures.at(-1) ?? 'none'})`;

export interface Scenario {
  id: number;
  title: string;
  measures: Measure[];
  naive(ctx: Ctx): Promise<RunResult>;
  invoke(ctx: Ctx): Promise<InvokeRunResult>;
}

export function oneLine(text: string, max = 110): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
