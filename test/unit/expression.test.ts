import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.ts';
import { compileExpression, MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LENGTH, resolveContextPath, type ExpressionContext, type Truth } from '../../src/policy/expression.ts';

const context: ExpressionContext = {
  action: 'git_push',
  tool: 'github.push',
  agent_id: 'release-bot',
  env: 'production',
  workflow: 'release',
  risk: 'high',
  params: {
    branch: 'main',
    amount: 1500,
    amount_text: '250',
    currency: 'EUR',
    force: false,
    customer: { id: 'cust_1', tier: 'gold' },
    env: 'dev',
    tags: ['a', 'b'],
    'odd-key': 'x',
  },
  variables: { branch: 'ignored-because-params-wins', region: 'eu', allowed_agents: ['release-bot', 'ops-bot'], due: '2024-05-01' },
};

function evaluate(source: string, ctx: ExpressionContext = context): Truth {
  return compileExpression(source).evaluate(ctx).value;
}

function compileError(source: string): ValidationError {
  try {
    compileExpression(source);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  throw new Error(`expected ${source} to be rejected`);
}

describe('compileExpression: names and bare words', () => {
  it('reads the top-level context and treats bare words on the right as strings', () => {
    expect(evaluate('action == git_push and branch == main')).toBe(true);
    expect(evaluate('action == git_pull')).toBe(false);
    expect(evaluate('env == production')).toBe(true);
    expect(evaluate('tool == "github.push"')).toBe(true);
    expect(evaluate('agent_id == "release-bot"')).toBe(true);
  });

  it('reads a dotted bare word on the right as text, unless it names params or variables', () => {
    expect(evaluate('tool == github.push')).toBe(true);
    expect(evaluate('tool in [github.push, github.merge]')).toBe(true);
    expect(evaluate('tool == github.merge')).toBe(false);
    expect(evaluate('params.amount > variables.limit', { params: { amount: 5 }, variables: { limit: 3 } })).toBe(true);
    expect(evaluate('params.amount > variables.limit', { params: { amount: 2 }, variables: { limit: 3 } })).toBe(false);
  });

  it('reads dotted paths on either side', () => {
    expect(evaluate('params.amount > 1000')).toBe(true);
    expect(evaluate('params.customer.tier == gold')).toBe(true);
    expect(evaluate('customer.id == cust_1')).toBe(true);
    expect(evaluate('params.customer.tier == params.customer.tier')).toBe(true);
    expect(evaluate('params.tags[1] == b')).toBe(true);
    expect(evaluate('params.tags[5] == b')).toBe(false);
    expect(evaluate('params["odd-key"] == x')).toBe(true);
  });

  it('falls back from unqualified names to params, then variables', () => {
    expect(evaluate('branch == main')).toBe(true);
    expect(evaluate('region == eu')).toBe(true);
    expect(evaluate('variables.branch == main')).toBe(false);
  });

  it('never lets params stand in for a top-level name', () => {
    // params.env is "dev"; env is the call's own env
    expect(evaluate('env == dev')).toBe(false);
    expect(evaluate('env == dev', { params: { env: 'dev' } })).toBe(false);
    expect(evaluate('params.env == dev')).toBe(true);
  });

  it('a bare word on the right is a string even when it is a context name', () => {
    expect(evaluate('workflow == workflow', { workflow: 'workflow' })).toBe(true);
    expect(evaluate('workflow == env')).toBe(false);
  });

  it('does not resolve prototype members', () => {
    expect(evaluate('constructor == constructor')).toBe(false);
    expect(evaluate('params.toString != x')).toBe(true);
  });

  it('exposes the resolution it uses', () => {
    expect(resolveContextPath(context, ['customer', 'tier'])).toBe('gold');
    expect(resolveContextPath(context, ['risk'])).toBe('high');
    expect(resolveContextPath(context, ['nothing'])).toBeUndefined();
    expect(resolveContextPath({}, ['params', 'x'])).toBeUndefined();
  });
});

describe('compileExpression: operators', () => {
  it.each([
    ['params.amount == 1500', true],
    ['params.amount != 1500', false],
    ['params.amount > 1499', true],
    ['params.amount > 1500', false],
    ['params.amount >= 1500', true],
    ['params.amount < 1500', false],
    ['params.amount <= 1500', true],
    ['params.amount > -1', true],
    ['amount_text > 100', true],
    ['amount_text == 250', true],
    ['amount_text < 100', false],
    ['currency > 1', 'unknown'],
    ['due < "2024-06-01"', true],
    ['due > "2024-06-01T00:00:00Z"', false],
    ['force == false', true],
    ['force', false],
    ['not force', true],
    ['params.customer', true],
    ['true', true],
    ['false', false],
    ['params.customer == null', false],
  ])('%s -> %s', (source, expected) => {
    expect(evaluate(source)).toBe(expected);
  });

  it('in / not in with literal lists', () => {
    expect(evaluate('env in [production, staging]')).toBe(true);
    expect(evaluate('env in [dev, staging]')).toBe(false);
    expect(evaluate('env not in [dev, staging]')).toBe(true);
    expect(evaluate('env not in [production]')).toBe(false);
    expect(evaluate('env not   in [production]')).toBe(false);
    expect(evaluate('params.amount in [1500, 2000]')).toBe(true);
    expect(evaluate('amount_text in [250]')).toBe(true);
    expect(evaluate('currency in ["EUR", "USD"]')).toBe(true);
    expect(evaluate('currency in []')).toBe(false);
    expect(evaluate('"not in" == "not in"')).toBe(true);
    expect(evaluate('env not\t in [production]')).toBe(false);
    expect(evaluate('params.knot  in [b]', { params: { knot: 'a' } })).toBe(false);
    expect(evaluate('not  input', { params: { input: false } })).toBe(true);
    expect(evaluate('"a  not  in" == "a  not  in"')).toBe(true);
  });

  it('in with a dotted path to a list in the context', () => {
    expect(evaluate('agent_id in variables.allowed_agents')).toBe(true);
    expect(evaluate('workflow in variables.allowed_agents')).toBe(false);
    expect(evaluate('agent_id in variables.region')).toBe(false); // not a list
    expect(evaluate('agent_id not in variables.missing')).toBe(true);
  });

  it('missing values: == false, != true, ordering false, in false, not in true', () => {
    expect(evaluate('nothing == x')).toBe(false);
    expect(evaluate('nothing == null')).toBe(false);
    expect(evaluate('nothing != x')).toBe(true);
    expect(evaluate('nothing > 0')).toBe(false);
    expect(evaluate('nothing < 0')).toBe(false);
    expect(evaluate('nothing in [a]')).toBe(false);
    expect(evaluate('nothing not in [a]')).toBe(true);
    expect(evaluate('nothing')).toBe(false);
    expect(evaluate('action == params.nothing')).toBe(false);
    expect(evaluate('action != params.nothing')).toBe(true);
    expect(evaluate('env == prod', {})).toBe(false);
  });

  it('compares objects deeply', () => {
    expect(evaluate('params.tags == variables.tags', { params: { tags: ['a'] }, variables: { tags: ['a'] } })).toBe(true);
    expect(evaluate('params.tags == variables.tags', { params: { tags: ['a'] }, variables: { tags: ['b'] } })).toBe(false);
  });
});

describe('compileExpression: precedence', () => {
  it('and binds tighter than or', () => {
    // false and true or true == (false and true) or true
    expect(evaluate('env == dev and action == git_push or tool == "github.push"')).toBe(true);
    expect(evaluate('env == dev and (action == git_push or tool == "github.push")')).toBe(false);
    // true or false and false == true or (false and false)
    expect(evaluate('env == production or env == dev and action == nope')).toBe(true);
    expect(evaluate('(env == production or env == dev) and action == nope')).toBe(false);
  });

  it('not applies to the whole comparison, and binds tighter than and / or', () => {
    expect(evaluate('not env == dev')).toBe(true);
    expect(evaluate('not env == production')).toBe(false);
    expect(evaluate('not env in [dev, staging]')).toBe(true);
    expect(evaluate('not not env == production')).toBe(true);
    expect(evaluate('not env == production or action == git_push')).toBe(true);
    expect(evaluate('not (env == production or action == git_push)')).toBe(false);
    expect(evaluate('not env == production and action == git_push')).toBe(false);
    expect(evaluate('action == git_push and not branch == main')).toBe(false);
    expect(evaluate('not(env == dev)')).toBe(true);
  });

  it('names that start with operator words are still names', () => {
    const ctx = { params: { notes: 'n', index: 1, order: 'o', android: true } };
    expect(evaluate('notes == n and index == 1 and order == o', ctx)).toBe(true);
    expect(evaluate('android', ctx)).toBe(true);
  });
});

describe('compileExpression: rejected at compile time', () => {
  it.each([
    ['release-bot == x', 'arithmetic is not supported', 7],
    ['a + 1 > 2', 'Unexpected "+" (arithmetic is not supported)', 2],
    ['params.amount * 2 > 10', 'arithmetic is not supported', 14],
    ['a == b && c == d', 'use "and" instead of &&', 7],
    ['a == b || c', 'use "or" instead of ||', 7],
    ['!a', 'use "not" instead of !', 0],
    ['a = b', 'use == to compare', 2],
    ['a === b', 'Expected expression after ==', 4],
    ['a == -b', '- can only make a number negative', 5],
    ['len(params.tags) > 1', 'function calls are not allowed (len)', 0],
    ['a == params.x.lower()', 'function calls are not allowed (params.x.lower)', 5],
    ['a ? b : c', 'the ?: operator is not supported', 0],
    ['this == 1', '"this" is not supported', 0],
    ['a b', 'expected one expression; join conditions with and / or', 2],
    ['a == b; c', 'expected one expression', 8],
    ['a == b == c', 'comparisons cannot be chained', 0],
    ['1 < a < 3', 'comparisons cannot be chained', 0],
    ['x in y', 'in needs a list like [a, b] or a dotted path to one', 5],
    ['x not in "abc"', 'not in needs a list', 9],
    ['a == [1, 2]', 'a list can only follow in or not in', 5],
    ['[1, 2]', 'a list can only follow in or not in', 0],
    ['a == not b', 'not cannot be compared', 5],
    ['a.b[c] > 1', 'a [..] field name must be a quoted string or a number', 0],
    ['"abc".length == 3', 'only names can be followed by .field', 0],
    ['(a == b', 'Unclosed (', 7],
    ['a == "b', 'Unclosed quote', 7],
    ['a ==', 'Expected expression after ==', 4],
    ['a and', 'and needs an expression on both sides', 2],
    ['a == b or', 'or needs an expression on both sides', 7],
    ['', 'the expression is empty', 0],
    ['   ', 'the expression is empty', 0],
  ])('%j: %s at character %i', (source, problem, position) => {
    const error = compileError(source);
    expect(error.message).toContain(problem);
    expect(error.message).toContain(`at character ${position}`);
    expect(error.message).toContain(`invalid expression "${source}"`);
    expect(error.details).toMatchObject({ expression: source, position });
  });
});

describe('compileExpression: ordering on values that cannot be compared is unknown', () => {
  const withAmount = (amount: unknown): ExpressionContext => ({ params: { amount }, env: 'prod' });

  it.each([
    ['[5000]', [5000], 'array'],
    ['{"value": 5000}', { value: 5000 }, 'object'],
    ['"0x1388"', '0x1388', 'text'],
    ['"5,000"', '5,000', 'text'],
    ['1e400', JSON.parse('1e400') as number, 'non-finite number'],
    ['true', true, 'boolean'],
    ['null', null, 'null'],
  ])('%s > 1000 is unknown, naming the operand and its kind', (_name, amount, kind) => {
    expect(compileExpression('params.amount > 1000').evaluate(withAmount(amount))).toEqual({
      value: 'unknown',
      uncomparable: [{ expression: 'params.amount > 1000', operand: 'params.amount', kind, expected: 'number' }],
    });
  });

  it('names the right-hand operand when that is the one that cannot be compared', () => {
    const result = compileExpression('1000 < params.amount').evaluate(withAmount('lots'));
    expect(result.uncomparable).toEqual([{ expression: '1000 < params.amount', operand: 'params.amount', kind: 'text', expected: 'number' }]);
  });

  it('three-valued and / or / not', () => {
    const truth = (source: string) => evaluate(source, withAmount([1]));
    expect(truth('params.amount > 1 and env == prod')).toBe('unknown');
    expect(truth('params.amount > 1 and env == dev')).toBe(false);
    expect(truth('env == dev and params.amount > 1')).toBe(false);
    expect(truth('params.amount > 1 or env == prod')).toBe(true);
    expect(truth('env == prod or params.amount > 1')).toBe(true);
    expect(truth('params.amount > 1 or env == dev')).toBe('unknown');
    expect(truth('not (params.amount > 1)')).toBe('unknown');
    expect(truth('not params.amount > 1')).toBe('unknown');
  });

  it('collects every comparison an unknown result depends on', () => {
    const result = compileExpression('params.amount > 1 or params.amount < 0').evaluate(withAmount('x'));
    expect(result.value).toBe('unknown');
    expect(result.uncomparable.map((u) => u.expression)).toEqual(['params.amount > 1', 'params.amount < 0']);
  });

  it('equality and missing values stay decidable', () => {
    expect(evaluate('params.amount == 5000', withAmount([5000]))).toBe(false);
    expect(evaluate('params.amount != 5000', withAmount([5000]))).toBe(true);
    expect(evaluate('params.amount > 1000', { params: {} })).toBe(false);
  });

  it('rejects at compile time an ordering against a literal that is not a number or a date', () => {
    for (const [source, literal] of [
      ['branch > main', '"main"'],
      ['params.amount >= "lots"', '"lots"'],
      ['params.amount < true', 'true'],
      ['null <= params.amount', 'null'],
    ] as const) {
      expect(compileError(source).message).toContain(`needs a number or an ISO date, got ${literal}`);
    }
    expect(() => compileExpression('due < "2024-06-01" and params.amount > -1.5')).not.toThrow();
  });
});

describe('compileExpression: size caps, checked before parsing', () => {
  it('answers a ValidationError, not a stack overflow, for 1,990 (', () => {
    const error = compileError('('.repeat(1990));
    expect(error.message).toContain(`nested deeper than ${MAX_EXPRESSION_DEPTH} levels of ( and [ at character ${MAX_EXPRESSION_DEPTH}`);
    expect(error.message.length).toBeLessThan(300);
    expect(error.details).toMatchObject({ position: MAX_EXPRESSION_DEPTH, limit: MAX_EXPRESSION_DEPTH });
  });

  it('accepts nesting up to the cap and counts [ too', () => {
    expect(MAX_EXPRESSION_DEPTH).toBe(32);
    const nested = (depth: number) => `${'('.repeat(depth)}env == prod${')'.repeat(depth)}`;
    expect(evaluate(nested(MAX_EXPRESSION_DEPTH), { env: 'prod' })).toBe(true);
    expect(compileError(nested(MAX_EXPRESSION_DEPTH + 1)).message).toContain('nested deeper than 32 levels');
    expect(compileError(`${'('.repeat(MAX_EXPRESSION_DEPTH)}env in [[a]]${')'.repeat(MAX_EXPRESSION_DEPTH)}`).message).toContain('nested deeper than 32 levels');
  });

  it('does not count brackets inside quotes, and sequential groups do not add up', () => {
    expect(evaluate(`env == "${'('.repeat(100)}"`, { env: '('.repeat(100) })).toBe(true);
    expect(evaluate(Array.from({ length: 100 }, () => '(env == prod)').join(' and '), { env: 'prod' })).toBe(true);
  });

  it('caps the length', () => {
    expect(MAX_EXPRESSION_LENGTH).toBe(2000);
    const atCap = `env == "${'x'.repeat(MAX_EXPRESSION_LENGTH - 9)}"`;
    expect(atCap).toHaveLength(MAX_EXPRESSION_LENGTH);
    expect(() => compileExpression(atCap)).not.toThrow();
    const error = compileError(`${atCap} `);
    expect(error.message).toBe('invalid expression: it is 2001 characters long; the limit is 2000');
    expect(error.details).toMatchObject({ limit: MAX_EXPRESSION_LENGTH });
  });
});

describe('compileExpression: caching', () => {
  it('returns the same compiled expression for the same source', () => {
    const first = compileExpression('env == cached_case');
    expect(compileExpression('env == cached_case')).toBe(first);
    expect(first.source).toBe('env == cached_case');
  });

  it('does not cache failures', () => {
    expect(() => compileExpression('a +')).toThrow(ValidationError);
    expect(() => compileExpression('a +')).toThrow(ValidationError);
  });

  it('keeps working after many distinct expressions', () => {
    for (let i = 0; i < 600; i++) expect(evaluate(`params.amount > ${i}`)).toBe(1500 > i);
    expect(evaluate('params.amount > 0')).toBe(true);
  });
});
