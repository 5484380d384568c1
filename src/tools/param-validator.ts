import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { ValidationError } from '../errors.ts';

// ajv-formats ships CommonJS; under NodeNext its default export is the module object.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/** JSON Schema validation of tool params with ajv; validators are compiled once per schema. */
export function createParamValidator() {
  // Draft-07 by default; tools (MCP servers especially) that declare 2020-12 get that dialect.
  const draft7 = new Ajv({ allErrors: true, strict: false, addUsedSchema: false });
  const draft2020 = new Ajv2020({ allErrors: true, strict: false, addUsedSchema: false });
  addFormats(draft7);
  addFormats(draft2020);
  const cache = new Map<string, ValidateFunction>();
  // A card's schema object lives as long as the cached card: found by identity, no re-serialising per call.
  const bySchemaObject = new WeakMap<object, ValidateFunction>();

  function compile(schema: Record<string, unknown>): ValidateFunction {
    const known = bySchemaObject.get(schema);
    if (known) return known;
    const text = JSON.stringify(schema);
    let validate = cache.get(text);
    if (!validate) {
      const dialect = String(schema['$schema'] ?? '');
      validate = (dialect.includes('2020-12') ? draft2020 : draft7).compile(schema);
      if (cache.size > 1000) cache.clear();
      cache.set(text, validate);
    }
    bySchemaObject.set(schema, validate);
    return validate;
  }

  return {
    /** Throws a ValidationError when the schema itself is not valid JSON Schema. */
    assertValidSchema(schema: Record<string, unknown>, label: string): void {
      try {
        compile(schema);
      } catch (error) {
        throw new ValidationError(`${label} is not a valid JSON Schema: ${(error as Error).message}`);
      }
    },

    /** Throws a 400 listing every failing path of the params. */
    assertValidParams(toolKey: string, schema: Record<string, unknown>, params: unknown): void {
      const validate = compile(schema);
      if (validate(params)) return;
      const problems = (validate.errors ?? []).map((e) => ({
        path: `params${e.instancePath.replaceAll('/', '.')}${e.keyword === 'required' ? `.${String(e.params['missingProperty'])}` : ''}`,
        message: e.message ?? 'invalid',
      }));
      const first = problems[0];
      throw new ValidationError(`Invalid params for ${toolKey}: ${first ? `${first.path} ${first.message}` : 'rejected by its schema'}`, { problems });
    },
  };
}
export type ParamValidator = ReturnType<typeof createParamValidator>;
