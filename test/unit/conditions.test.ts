import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.ts';
import {
  asNumber,
  assertValidConditions,
  compareOrdered,
  describeCondition,
  evaluateCondition,
  evaluateConditions,
  jsonValuesEqual,
  MAX_COMPARABLE_TEXT_LENGTH,
  orderingKind,
  orderingProblem,
  parseCondition,
  readPath,
  valuesMatch,
} from '../../src/policy/conditions.ts';

/** Runs fn and returns its result with the time it took. */
function timed<T>(fn: () => T): { result: T; ms: number } {
  const started = performance.now();
  const result = fn();
  return { result, ms: performance.now() - started };
}

/** Values a `> 1000` check must never let through (issue 9): JSON 1e400 parses to Infinity. */
const WRONG_TYPE_AMOUNTS = [
  ['[5000]', [5000], 'array'],
  ['{"value": 5000}', { value: 5000 }, 'object'],
  ['"0x1388"', '0x1388', 'text'],
  ['"5,000"', '5,000', 'text'],
  ['1e400', JSON.parse('1e400') as number, 'non-finite number'],
] as const;

describe('readPath', () => {
  const state = {
    status: 'open',
    invoice: { status: 'paid', lines: [{ sku: 'a' }, { sku: 'b' }], total: 0, note: null },
    'flat.key': 'flat',
  };

  it('reads top-level and nested fields', () => {
    expect(readPath(state, 'status')).toBe('open');
    expect(readPath(state, 'invoice.status')).toBe('paid');
    expect(readPath(state, 'invoice.total')).toBe(0);
    expect(readPath(state, 'invoice.note')).toBeNull();
  });

  it('reads array items by index', () => {
    expect(readPath(state, 'invoice.lines.1.sku')).toBe('b');
    expect(readPath(state, 'invoice.lines.5.sku')).toBeUndefined();
    expect(readPath(state, 'invoice.lines.first')).toBeUndefined();
  });

  it('prefers an own key that contains dots literally', () => {
    expect(readPath(state, 'flat.key')).toBe('flat');
  });

  it('returns undefined for missing fields and through scalars', () => {
    expect(readPath(state, 'missing')).toBeUndefined();
    expect(readPath(state, 'invoice.missing.deeper')).toBeUndefined();
    expect(readPath(state, 'status.length')).toBeUndefined();
    expect(readPath(null, 'a')).toBeUndefined();
    expect(readPath('text', 'length')).toBeUndefined();
  });

  it('never reads prototype members', () => {
    expect(readPath({}, 'constructor')).toBeUndefined();
    expect(readPath({ a: {} }, 'a.__proto__')).toBeUndefined();
    expect(readPath({ a: {} }, 'a.toString')).toBeUndefined();
  });
});

describe('jsonValuesEqual', () => {
  it('compares scalars strictly', () => {
    expect(jsonValuesEqual(5, 5)).toBe(true);
    expect(jsonValuesEqual(5, '5')).toBe(false);
    expect(jsonValuesEqual(null, null)).toBe(true);
    expect(jsonValuesEqual(null, undefined)).toBe(false);
    expect(jsonValuesEqual(true, 'true')).toBe(false);
  });

  it('compares objects regardless of key order and arrays in order', () => {
    expect(jsonValuesEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true);
    expect(jsonValuesEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(jsonValuesEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonValuesEqual([1], { 0: 1 })).toBe(false);
    expect(jsonValuesEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true);
  });
});

describe('asNumber and compareOrdered', () => {
  it('accepts numbers and plain numeric strings only', () => {
    expect(asNumber(3)).toBe(3);
    expect(asNumber('3')).toBe(3);
    expect(asNumber(' -1.5 ')).toBe(-1.5);
    expect(asNumber('1e3')).toBe(1000);
    expect(asNumber('')).toBeUndefined();
    expect(asNumber('0x10')).toBeUndefined();
    expect(asNumber('12abc')).toBeUndefined();
    expect(asNumber(Number.NaN)).toBeUndefined();
    expect(asNumber(Number.POSITIVE_INFINITY)).toBeUndefined();
    expect(asNumber(true)).toBeUndefined();
    expect(asNumber(null)).toBeUndefined();
  });

  it('orders numbers, numeric strings and ISO dates; nothing else', () => {
    expect(compareOrdered(2, 1)).toBeGreaterThan(0);
    expect(compareOrdered('10', 9)).toBeGreaterThan(0);
    expect(compareOrdered('2024-01-02', '2024-01-01T23:59:59Z')).toBeGreaterThan(0);
    expect(compareOrdered('2024-01-01', '2024-01-01T00:00:00Z')).toBe(0);
    expect(compareOrdered('abc', 1)).toBeUndefined();
    expect(compareOrdered('2024-01-01', 5)).toBeUndefined();
    expect(compareOrdered(true, 0)).toBeUndefined();
    expect(compareOrdered(null, 0)).toBeUndefined();
  });
});

describe('asNumber: linear time, capped length', () => {
  // The old pattern took 17 s on this input (quadratic backtracking), stalling the event loop.
  it.each([
    ['80,000 digits then x', '1'.repeat(80_000) + 'x'],
    ['recheck attack: zeros then E', '0'.repeat(54_774) + 'E'],
    ['80,000 spaces then x', ' '.repeat(80_000) + 'x'],
    ['digits and dots', '1.'.repeat(40_000)],
  ])('%s: not a number, answered at once', (_name, input) => {
    const { result, ms } = timed(() => asNumber(input));
    expect(result).toBeUndefined();
    expect(ms).toBeLessThan(500);
  });

  it('scans text up to the cap in linear time', () => {
    const text = '0'.repeat(MAX_COMPARABLE_TEXT_LENGTH - 1) + '7';
    const { result, ms } = timed(() => asNumber(text));
    expect(result).toBe(7);
    expect(ms).toBeLessThan(500);
  });

  it('does not read text longer than the cap, even padded numbers', () => {
    expect(MAX_COMPARABLE_TEXT_LENGTH).toBe(4096);
    expect(asNumber(' '.repeat(MAX_COMPARABLE_TEXT_LENGTH) + '7')).toBeUndefined();
    expect(asNumber(' '.repeat(MAX_COMPARABLE_TEXT_LENGTH - 1) + '7')).toBe(7);
    expect(orderingKind('7'.padStart(MAX_COMPARABLE_TEXT_LENGTH + 1, ' '))).toBe('text too long');
    expect(compareOrdered(`${' '.repeat(MAX_COMPARABLE_TEXT_LENGTH)}2024-01-01`, '2023-01-01')).toBeUndefined();
  });

  it.each([
    ['5.', 5],
    ['.5', 0.5],
    ['-.5e-3', -0.0005],
    ['+1E+2', 100],
    ['\n 42\t', 42],
    ['007', 7],
  ])('reads %j as %d', (text, expected) => {
    expect(asNumber(text)).toBe(expected);
  });

  it.each(['.', '-', '+', 'e5', '1e', '1e+', '1.2.3', '--1', '1 2', '1_000', 'Infinity', '1e400', '５', '0b1', ' '])('rejects %j', (text) => {
    expect(asNumber(text)).toBeUndefined();
  });
});

describe('orderingKind and orderingProblem', () => {
  it('names what a value is to an ordered comparison', () => {
    expect(orderingKind(5)).toBe('number');
    expect(orderingKind('5e3')).toBe('number');
    expect(orderingKind('2024-01-01')).toBe('date');
    expect(orderingKind([5])).toBe('array');
    expect(orderingKind({ value: 5 })).toBe('object');
    expect(orderingKind(true)).toBe('boolean');
    expect(orderingKind(null)).toBe('null');
    expect(orderingKind(Number.POSITIVE_INFINITY)).toBe('non-finite number');
    expect(orderingKind('5,000')).toBe('text');
  });

  it('says which side could not be compared and what was needed', () => {
    expect(orderingProblem(5, 1)).toBeUndefined();
    expect(orderingProblem([5000], 1000)).toEqual({ side: 'left', kind: 'array', expected: 'number' });
    expect(orderingProblem(1000, 'abc')).toEqual({ side: 'right', kind: 'text', expected: 'number' });
    expect(orderingProblem('abc', 'xyz')).toEqual({ side: 'left', kind: 'text', expected: 'number or date' });
    expect(orderingProblem(5, '2024-01-01')).toEqual({ side: 'left', kind: 'number', expected: 'date' });
  });
});

describe('valuesMatch', () => {
  it('matches JSON-equal values and numbers against numeric strings', () => {
    expect(valuesMatch('5', 5)).toBe(true);
    expect(valuesMatch(5, '5.0')).toBe(true);
    expect(valuesMatch('abc', 5)).toBe(false);
    expect(valuesMatch({ a: 1 }, { a: 1 })).toBe(true);
    expect(valuesMatch(true, 'true')).toBe(false);
  });
});

describe('parseCondition', () => {
  it('treats non-strings and strings without an operator as literals', () => {
    expect(parseCondition(5)).toEqual({ kind: 'literal', value: 5 });
    expect(parseCondition('closed')).toEqual({ kind: 'literal', value: 'closed' });
    expect(parseCondition('in progress')).toEqual({ kind: 'literal', value: 'in progress' });
    expect(parseCondition('inbox')).toEqual({ kind: 'literal', value: 'inbox' });
    expect(parseCondition('= x')).toEqual({ kind: 'literal', value: '= x' });
  });

  it('parses operators and typed operands', () => {
    expect(parseCondition('> 0')).toMatchObject({ kind: 'compare', operator: '>', operand: 0 });
    expect(parseCondition('>=100')).toMatchObject({ kind: 'compare', operator: '>=', operand: 100 });
    expect(parseCondition('== true')).toMatchObject({ operator: '==', operand: true });
    expect(parseCondition('!= null')).toMatchObject({ operator: '!=', operand: null });
    expect(parseCondition('== "in progress"')).toMatchObject({ operator: '==', operand: 'in progress' });
    expect(parseCondition('== in progress')).toMatchObject({ operator: '==', operand: 'in progress' });
    expect(parseCondition('< 2024-06-01')).toMatchObject({ operator: '<', operand: '2024-06-01' });
  });

  it('parses lists: bare words, numbers, literals and quoted strings', () => {
    expect(parseCondition('in [a, 2, true, null, "x, y", \'q\']')).toMatchObject({
      kind: 'membership',
      operator: 'in',
      items: ['a', 2, true, null, 'x, y', 'q'],
    });
    expect(parseCondition('not  in [closed]')).toMatchObject({ operator: 'not in', items: ['closed'] });
    expect(parseCondition('in []')).toMatchObject({ items: [] });
  });

  it.each([
    ['>', 'needs a value'],
    ['>= ', 'needs a value'],
    ['> abc', 'needs a number or an ISO date'],
    ['in [a, b', 'not closed'],
    ['in [a,, b]', 'empty item'],
    ['in ["a]', 'unclosed quote'],
    ['== "abc', 'unclosed quote'],
  ])('rejects the malformed condition %j', (condition, message) => {
    expect(() => parseCondition(condition)).toThrow(ValidationError);
    expect(() => parseCondition(condition)).toThrow(message);
  });
});

describe('evaluateCondition', () => {
  it('literal: strict JSON equality', () => {
    expect(evaluateCondition('open', 'open')).toEqual({ ok: true, reason: 'equals "open"' });
    expect(evaluateCondition('closed', 'open')).toEqual({ ok: false, reason: 'expected "open", got "closed"' });
    expect(evaluateCondition(true, true).ok).toBe(true);
    expect(evaluateCondition('true', true).ok).toBe(false);
    expect(evaluateCondition('5', 5).ok).toBe(false);
    expect(evaluateCondition(null, null).ok).toBe(true);
    expect(evaluateCondition({ b: 2, a: 1 }, { a: 1, b: 2 }).ok).toBe(true);
    expect(evaluateCondition([1, 2], [1, 2]).ok).toBe(true);
    expect(evaluateCondition([1, 2], [2, 1]).ok).toBe(false);
  });

  it.each([
    [1, '> 0', true],
    [0, '> 0', false],
    [-1, '> 0', false],
    [100, '>= 100', true],
    [99.5, '>= 100', false],
    [4, '< 5', true],
    [5, '< 5', false],
    [5, '<= 5', true],
    [6, '<= 5', false],
    ['150', '>= 100', true],
    ['50', '>= 100', false],
    [' 7 ', '> 6', true],
  ])('ordering: %j %s -> %s', (actual, condition, ok) => {
    expect(evaluateCondition(actual, condition).ok).toBe(ok);
  });

  it('ordering fails (without throwing) on values that are not numbers', () => {
    expect(evaluateCondition('abc', '> 0')).toEqual({
      ok: false,
      reason: 'expected > 0, got "abc" (cannot be compared: text, not a number)',
      uncomparable: { kind: 'text', expected: 'number' },
    });
    expect(evaluateCondition(true, '> 0').ok).toBe(false);
    expect(evaluateCondition(null, '>= 0').ok).toBe(false);
    expect(evaluateCondition({ n: 1 }, '< 5').ok).toBe(false);
    expect(evaluateCondition('2024-01-01', '> 0').ok).toBe(false);
  });

  it.each(WRONG_TYPE_AMOUNTS)('an uncomparable %s fails "> 1000", saying why', (_name, value, kind) => {
    const result = evaluateCondition(value, '> 1000');
    expect(result.ok).toBe(false);
    expect(result.uncomparable).toEqual({ kind, expected: 'number' });
    expect(result.reason).toContain('(cannot be compared: ');
    expect(evaluateCondition(value, '<= 1000').ok).toBe(false);
  });

  it('ordering compares ISO dates', () => {
    expect(evaluateCondition('2024-03-01T10:00:00Z', '> 2024-01-01').ok).toBe(true);
    expect(evaluateCondition('2023-12-31', '> 2024-01-01').ok).toBe(false);
    expect(evaluateCondition('2024-01-01T00:00:00+02:00', '< 2024-01-01').ok).toBe(true);
    expect(evaluateCondition('2024-01-01', '<= 2024-01-01T00:00:00Z').ok).toBe(true);
    expect(evaluateCondition('yesterday', '< 2024-01-01')).toEqual({
      ok: false,
      reason: 'expected < 2024-01-01, got "yesterday" (cannot be compared: text, not an ISO date)',
      uncomparable: { kind: 'text', expected: 'date' },
    });
    expect(evaluateCondition(5, '< 2024-01-01').ok).toBe(false);
  });

  it('== and != compare with the typed operand', () => {
    expect(evaluateCondition('x', '== x').ok).toBe(true);
    expect(evaluateCondition('y', '== x').ok).toBe(false);
    expect(evaluateCondition(5, '== 5').ok).toBe(true);
    expect(evaluateCondition('5', '== 5').ok).toBe(true);
    expect(evaluateCondition(true, '== true').ok).toBe(true);
    expect(evaluateCondition('true', '== true').ok).toBe(false);
    expect(evaluateCondition('open', '!= closed')).toEqual({ ok: true, reason: '"open" != closed' });
    expect(evaluateCondition('closed', '!= closed')).toEqual({ ok: false, reason: 'expected != closed, got "closed"' });
    expect(evaluateCondition(null, '!= null').ok).toBe(false);
    expect(evaluateCondition(0, '!= null').ok).toBe(true);
  });

  it('in / not in', () => {
    expect(evaluateCondition('a', 'in [a, b]').ok).toBe(true);
    expect(evaluateCondition('c', 'in [a, b]').ok).toBe(false);
    expect(evaluateCondition(2, 'in [1, 2]').ok).toBe(true);
    expect(evaluateCondition('2', 'in [1, 2]').ok).toBe(true);
    expect(evaluateCondition('x, y', 'in ["x, y", z]').ok).toBe(true);
    expect(evaluateCondition(null, 'in [null]').ok).toBe(true);
    expect(evaluateCondition('a', 'in []').ok).toBe(false);
    expect(evaluateCondition('c', 'not in [a, b]').ok).toBe(true);
    expect(evaluateCondition('a', 'not in [a, b]')).toEqual({ ok: false, reason: 'expected not in [a, b], got "a"' });
  });

  it('a missing value fails every condition, including != and not in', () => {
    for (const condition of ['!= closed', 'not in [a]', '> 0', 'open', null]) {
      expect(evaluateCondition(undefined, condition).ok).toBe(false);
    }
    expect(evaluateCondition(undefined, '!= closed').reason).toBe('missing (expected != closed)');
  });

  it('throws ValidationError for a malformed condition', () => {
    expect(() => evaluateCondition(5, '> five')).toThrow(ValidationError);
  });
});

describe('evaluateConditions', () => {
  const state = { charged: true, amount: '250', invoice: { status: 'paid', due: '2024-05-01' }, status: null };

  it('checks each field, following dotted paths', () => {
    const checks = evaluateConditions(state, { charged: true, amount: '>= 100', 'invoice.status': 'in [paid, settled]', 'invoice.due': '< 2024-06-01' });
    expect(checks.map((c) => [c.field, c.ok, c.missing])).toEqual([
      ['charged', true, false],
      ['amount', true, false],
      ['invoice.status', true, false],
      ['invoice.due', true, false],
    ]);
    expect(checks[1]).toEqual({ field: 'amount', expected: '>= 100', actual: '250', ok: true, reason: '"250" >= 100', missing: false });
  });

  it('reports failures with the actual value', () => {
    const [check] = evaluateConditions(state, { 'invoice.status': 'open' });
    expect(check).toEqual({ field: 'invoice.status', expected: 'open', actual: 'paid', ok: false, reason: 'expected "open", got "paid"', missing: false });
  });

  it('a field missing from the state fails with missing: true; null is present', () => {
    const checks = evaluateConditions(state, { refund_id: '!= null', 'invoice.refund': 'not in [x]', status: null });
    expect(checks[0]).toMatchObject({ field: 'refund_id', ok: false, missing: true, reason: 'missing from state', actual: undefined });
    expect(checks[1]).toMatchObject({ ok: false, missing: true });
    expect(checks[2]).toMatchObject({ field: 'status', ok: true, missing: false });
  });

  it('returns nothing for no conditions', () => {
    expect(evaluateConditions(state, {})).toEqual([]);
  });

  it('fails a field whose value cannot be compared, naming the field and the kind', () => {
    const checks = evaluateConditions({ amount: [5000], total: 5000 }, { amount: '> 0', total: '> 0' });
    expect(checks[0]).toMatchObject({ field: 'amount', ok: false, missing: false, uncomparable: { kind: 'array', expected: 'number' } });
    expect(checks[0]!.reason).toBe('expected > 0, got [5000] (cannot be compared: an array, not a number)');
    expect(checks[1]).toMatchObject({ field: 'total', ok: true });
    expect(checks[1]).not.toHaveProperty('uncomparable');
  });

  it('names the field of a malformed condition', () => {
    expect(() => evaluateConditions(state, { amount: '> lots' })).toThrow(/^conditions\.amount: Condition "> lots"/);
  });
});

describe('assertValidConditions and describeCondition', () => {
  it('validates early with a label', () => {
    expect(() => assertValidConditions({ ok: '> 1', bad: 'in [a' }, 'approval_contract.conditions')).toThrow(
      'approval_contract.conditions.bad: Condition "in [a": the list is not closed with ]',
    );
    expect(() => assertValidConditions({ a: 1, b: '!= x', c: 'in [a]' })).not.toThrow();
  });

  it('describes conditions for people', () => {
    expect(describeCondition('> 0')).toBe('> 0');
    expect(describeCondition(' in [a, b] ')).toBe('in [a, b]');
    expect(describeCondition('open')).toBe('== "open"');
    expect(describeCondition(true)).toBe('== true');
  });
});
