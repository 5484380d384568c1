import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../errors.ts';

export const MAX_JSON_DEPTH = 64;

/**
 * A UTF-16 surrogate without its pair. JSON may spell one (`"\udc00"`), but it is no character:
 * Postgres' jsonb refuses it. With the `u` flag a well-formed pair is one code point, so only
 * lone halves match. (`String.prototype.isWellFormed` is ES2024, past our lib setting.)
 */
const LONE_SURROGATE = /\p{Surrogate}/u;

function stringProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'a NUL character';
  if (LONE_SURROGATE.test(text)) return 'a lone UTF-16 surrogate (\\ud800-\\udfff without its pair)';
  return null;
}

/**
 * Finds what no route can store or process safely: the NUL character (Postgres text refuses
 * it), lone surrogates (jsonb refuses them), both in values and in keys, and nesting deeper
 * than MAX_JSON_DEPTH (recursive code would overflow the stack). Iterative, so a hostile
 * document cannot overflow this check either.
 */
export function findUnsafeJson(value: unknown): string | null {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value, path: 'body', depth: 0 }];
  while (stack.length > 0) {
    const { value: current, path, depth } = stack.pop()!;
    if (typeof current === 'string') {
      const problem = stringProblem(current);
      if (problem) return `${path} contains ${problem}`;
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) return `${path} is nested deeper than ${MAX_JSON_DEPTH} levels`;
    for (const [key, child] of Object.entries(current)) {
      const problem = stringProblem(key);
      if (problem) return `${path} has a key with ${problem}`;
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
