import type { FastifySchemaCompiler } from 'fastify';
import type { z } from 'zod';
import { AppError, ValidationError } from '../errors.ts';

export interface FieldProblem {
  path: string;
  message: string;
}

/** A 400 listing every failing path, the first one in the message. */
export function validationErrorOf(error: z.ZodError, label: string): ValidationError {
  const problems: FieldProblem[] = error.issues.map((issue) => ({
    path: [label, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
  const first = problems[0]!;
  return new ValidationError(`Invalid request: ${first.path}: ${first.message}`, { problems });
}

/** Parse with zod, or throw a 400 listing every failing path. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, label = 'body'): z.infer<S> {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  throw validationErrorOf(parsed.error, label);
}

/** Fastify names the query string `querystring`; our error paths have always said `query`. */
const LABELS: Record<string, string> = { body: 'body', querystring: 'query', params: 'params', headers: 'headers' };

/**
 * Validates a route's params, query and body with its zod schemas, and fails the way
 * `parseInput` does: a missing body counts as `{}`, and the error is our ValidationError,
 * which Fastify passes to the error handler untouched (it only fills in a missing status and
 * code). A refinement that throws an AppError (a policy expression too deep) is answered as
 * that error; Fastify would otherwise turn a throwing validator into a 500.
 */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  const label = LABELS[httpPart ?? 'body'] ?? httpPart ?? 'body';
  return (data) => {
    try {
      return { value: parseInput(schema, data, label) };
    } catch (error) {
      if (error instanceof AppError) return { error };
      throw error;
    }
  };
};
