import { z } from 'zod';

/** Every 4xx and 5xx answer: `{error: {code, message, details?}}`. */
export const errorResponseSchema = z
  .object({
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  })
  .describe('The one error shape for every 4xx and 5xx');
export type ErrorResponse = z.infer<typeof errorResponseSchema>;

/** The error answers every keyed route can give (auth, scope, validation, limits, store down). */
export const errorResponses = {
  400: errorResponseSchema,
  401: errorResponseSchema,
  403: errorResponseSchema,
  404: errorResponseSchema,
  409: errorResponseSchema,
  413: errorResponseSchema,
  415: errorResponseSchema,
  422: errorResponseSchema,
  429: errorResponseSchema,
  500: errorResponseSchema,
  503: errorResponseSchema,
} as const;

/**
 * An answer object that keeps the fields it does not name (serialization must not drop what
 * agents read), typed as its named fields only so the services' interfaces satisfy it.
 */
export function openObject<Shape extends z.ZodRawShape>(shape: Shape): z.ZodType<z.output<z.ZodObject<Shape>>, z.input<z.ZodObject<Shape>>> {
  return z.looseObject(shape);
}
