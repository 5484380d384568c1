import { readPath } from '../policy/conditions.ts';

const WHOLE = /^\{\{\s*([A-Za-z_][\w.]*)\s*\}\}$/;
const INLINE = /\{\{\s*([A-Za-z_][\w.]*)\s*\}\}/g;

/**
 * Fills `{{params.payment_id}}`-style placeholders in a state_refetch's params from the call,
 * so a tool's registered refetch can name the entity of each call. A string that is exactly one
 * placeholder takes the value with its type; placeholders inside text are interpolated.
 */
export function bindTemplate(template: unknown, bindings: Record<string, unknown>): unknown {
  if (typeof template === 'string') {
    const whole = WHOLE.exec(template);
    if (whole) return readPath(bindings, whole[1]!);
    return template.replace(INLINE, (_match, path: string) => {
      const value = readPath(bindings, path);
      return value === undefined || value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
    });
  }
  if (Array.isArray(template)) return template.map((item) => bindTemplate(item, bindings));
  if (template !== null && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, bindTemplate(v, bindings)]));
  }
  return template;
}
