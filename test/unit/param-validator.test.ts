import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.ts';
import { createParamValidator } from '../../src/tools/param-validator.ts';

describe('param validator', () => {
  const validator = createParamValidator();
  const schema = { type: 'object', required: ['id'], properties: { id: { type: 'string' }, n: { type: 'integer', minimum: 1 } } };

  it('lists every failing path', () => {
    try {
      validator.assertValidParams('t.x', schema, { n: 0 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      const problems = (error as ValidationError).details as { problems: Array<{ path: string }> };
      expect(problems.problems.map((p) => p.path).sort()).toEqual(['params.id', 'params.n']);
    }
    expect(() => validator.assertValidParams('t.x', schema, { id: 'a', n: 2 })).not.toThrow();
  });

  it('refuses a schema that is not JSON Schema', () => {
    expect(() => validator.assertValidSchema({ type: 'nope' }, 'input_schema')).toThrow(/not a valid JSON Schema/);
  });

  it('accepts draft 2020-12 schemas, as newer MCP servers declare, with their keywords', () => {
    const modern = {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: { pair: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }], items: false } },
    };
    expect(() => validator.assertValidSchema(modern, 'input_schema')).not.toThrow();
    expect(() => validator.assertValidParams('t.y', modern, { pair: ['a', 1] })).not.toThrow();
    expect(() => validator.assertValidParams('t.y', modern, { pair: [1, 'a'] })).toThrow(ValidationError);
  });
});
