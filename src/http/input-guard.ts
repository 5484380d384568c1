import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../errors.ts';

export const MAX_JSON_DEPTH = 64;

/**
 * Finds what no route can store or process safely: the NUL character (Postgres text refuses
 * it) and nesting deeper than MAX_JSON_DEPTH (recursive code would overflow the stack).
 * Iterative, so a hostile document cannot overflow this check either.
 */
export function findUnsafeJson(value: unknown): string | null {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value, path: 'body', depth: 0 }];
  while (stack.length > 0) {
    const { value: current, path, depth } = stack.pop()!;
    if (typeof current === 'string') {
      if (current.includes('\u0000')) return `${path} contains a NUL character`;
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) return `${path} is nested deeper than ${MAX_JSON_DEPTH} levels`;
    for (const [key, child] of Object.entries(current)) {
      if (key.includes('\u0000')) return `${path} has a key with a NUL character`;
      stack.push({ value: child, path: `${path}.${key}`, depth: depth + 1 });
    }
  }
  return null;
}

export function registerInputGuard(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    if (/%00/i.test(request.url)) throw new ValidationError('The URL contains a NUL character (%00)');
  });
  app.addHook('preValidation', async (request) => {
    const problem = findUnsafeJson(request.body);
    if (problem) throw new ValidationError(`Invalid request: ${problem}`);
  });
}
