import type { z } from 'zod';
import { ValidationError } from '../errors.ts';

export interface FieldProblem {
  path: string;
  message: string;
}

/** Parse with zod, or throw a 400 listing every failing path. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, label = 'body'): z.infer<S> {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const problems: FieldProblem[] = parsed.error.issues.map((issue) => ({
    path: [label, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
  const first = problems[0]!;
  throw new ValidationError(`Invalid request: ${first.path}: ${first.message}`, { problems });
}
