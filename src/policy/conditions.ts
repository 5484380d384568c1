import { ValidationError } from '../errors.ts';

/**
 * Conditions: field rules shared by `/state/verify`, reconciliation and approval contracts.
 *
 * A condition is either a literal (strict JSON equality with the state value) or an operator
 * string: `"> 0"`, `">= 100"`, `"< 5"`, `"<= 5"`, `"== x"`, `"!= closed"`, `"in [a, b]"`,
 * `"not in [a, b]"`. Operands written as text are read like list items: bare words are strings,
 * numbers are numbers, `true` / `false` / `null`, and quoted strings for anything else. A string
 * that does not start with an operator is a literal.
 */

export type ComparisonOperator = '==' | '!=' | '>' | '>=' | '<' | '<=';

export type ParsedCondition =
  | { kind: 'literal'; value: unknown }
  | { kind: 'compare'; operator: ComparisonOperator; operand: unknown; source: string }
  | { kind: 'membership'; operator: 'in' | 'not in'; items: unknown[]; source: string };

export interface ConditionResult {
  ok: boolean;
  reason: string;
  /** Set when the value could not be ordered against the operand: the condition fails. */
  uncomparable?: Omit<OrderingProblem, 'side'>;
}

export interface ConditionCheck {
  field: string;
  expected: unknown;
  actual: unknown;
  ok: boolean;
  reason: string;
  missing: boolean;
  /** Set when the field's value could not be ordered against the condition: the check fails. */
  uncomparable?: Omit<OrderingProblem, 'side'>;
}

/**
 * Reads a dotted path (`invoice.status`, `items.0.id`) from nested objects and arrays. An own key
 * that contains the dots literally wins, so flattened state (`{"invoice.status": "open"}`) works.
 * Only own properties are read: `constructor` or `__proto__` never resolve to prototype members.
 */
export function readPath(source: unknown, path: string): unknown {
  if (isRecord(source) && Object.hasOwn(source, path)) return source[path];
  let current: unknown = source;
  for (const segment of path.split('.')) {
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(segment)) return undefined;
      current = current[Number(segment)];
    } else if (isRecord(current)) {
      if (!Object.hasOwn(current, segment)) return undefined;
      current = current[segment];
    } else {
      return undefined;
    }
  }
  return current;
}

/** Strict JSON equality: same types, objects compared key by key regardless of key order. */
export function jsonValuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonValuesEqual(item, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const aKeys = Object.keys(a).filter((k) => a[k] !== undefined);
    const bKeys = Object.keys(b).filter((k) => b[k] !== undefined);
    if (aKeys.length !== bKeys.length) return false;
    return aKeys.every((k) => Object.hasOwn(b, k) && jsonValuesEqual(a[k], b[k]));
  }
  return false;
}

/**
 * Longest text read as a number or an ISO date. Longer text is not comparable: an ordered
 * comparison on it fails (a condition fails; a deny or require_approval rule matches).
 */
export const MAX_COMPARABLE_TEXT_LENGTH = 4096;

/** A number, or a string that is plainly a decimal number ("5", "-1.5", "1e3"; not "", "0x10"). */
export function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.length <= MAX_COMPARABLE_TEXT_LENGTH && isDecimalText(value.trim())) {
    const n = Number(value);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/**
 * `[-+]? (digits [. digits?] | . digits) ([eE] [-+]? digits)?`, scanned by hand in one pass: the
 * regular expression for it backtracks quadratically (80,000 digits and an x took 17 s).
 */
function isDecimalText(text: string): boolean {
  let i = 0;
  const skipDigits = () => {
    const start = i;
    while (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
    return i - start;
  };
  if (text[i] === '+' || text[i] === '-') i++;
  let digits = skipDigits();
  if (text[i] === '.') {
    i++;
    digits += skipDigits();
  }
  if (digits === 0) return false;
  if (text[i] === 'e' || text[i] === 'E') {
    i++;
    if (text[i] === '+' || text[i] === '-') i++;
    if (skipDigits() === 0) return false;
  }
  return i === text.length;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?$/;

/** Milliseconds since the epoch for an ISO 8601 date string (or a Date); undefined otherwise. */
export function asIsoTime(value: unknown): number | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.getTime();
  if (typeof value !== 'string' || value.length > MAX_COMPARABLE_TEXT_LENGTH) return undefined;
  const text = value.trim();
  if (!ISO_DATE.test(text)) return undefined;
  const time = Date.parse(text);
  return Number.isNaN(time) ? undefined : time;
}

/**
 * Orders two values that are both numbers (numeric strings count) or both ISO dates. Returns a
 * negative, zero or positive number, or undefined when they cannot be ordered: ordering a
 * non-number must fail the rule, not guess.
 */
export function compareOrdered(left: unknown, right: unknown): number | undefined {
  const leftNumber = asNumber(left);
  const rightNumber = asNumber(right);
  if (leftNumber !== undefined && rightNumber !== undefined) return leftNumber - rightNumber;
  const leftTime = asIsoTime(left);
  const rightTime = asIsoTime(right);
  if (leftTime !== undefined && rightTime !== undefined) return leftTime - rightTime;
  return undefined;
}

/** What an ordered comparison sees in a value: a number, a date, or what it is instead. */
export type OrderingKind = 'number' | 'date' | 'array' | 'object' | 'boolean' | 'null' | 'non-finite number' | 'text too long' | 'text';

/** Which side of an ordered comparison could not be compared, what it is, and what was needed. */
export interface OrderingProblem {
  side: 'left' | 'right';
  kind: OrderingKind;
  expected: 'number' | 'date' | 'number or date';
}

export function orderingKind(value: unknown): OrderingKind {
  if (asNumber(value) !== undefined) return 'number';
  if (asIsoTime(value) !== undefined) return 'date';
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      return 'non-finite number';
    case 'boolean':
      return 'boolean';
    case 'string':
      return value.length > MAX_COMPARABLE_TEXT_LENGTH ? 'text too long' : 'text';
    default:
      return 'object';
  }
}

/** Why compareOrdered(left, right) gave undefined; undefined when it did not. */
export function orderingProblem(left: unknown, right: unknown): OrderingProblem | undefined {
  if (compareOrdered(left, right) !== undefined) return undefined;
  const leftKind = orderingKind(left);
  const rightKind = orderingKind(right);
  const leftOrdered = leftKind === 'number' || leftKind === 'date';
  const rightOrdered = rightKind === 'number' || rightKind === 'date';
  if (!leftOrdered) return { side: 'left', kind: leftKind, expected: rightOrdered ? rightKind : 'number or date' };
  if (!rightOrdered) return { side: 'right', kind: rightKind, expected: leftKind };
  // A number against a date: the left side is the value being checked.
  return { side: 'left', kind: leftKind, expected: rightKind };
}

const KIND_PHRASES: Record<OrderingKind, string> = {
  number: 'a number',
  date: 'an ISO date',
  array: 'an array',
  object: 'an object',
  boolean: 'a boolean',
  null: 'null',
  'non-finite number': 'a non-finite number',
  'text too long': `text longer than ${MAX_COMPARABLE_TEXT_LENGTH} characters`,
  text: 'text',
};
const EXPECTED_PHRASES: Record<OrderingProblem['expected'], string> = {
  number: 'a number',
  date: 'an ISO date',
  'number or date': 'a number or an ISO date',
};

/** For reasons: "an array, not a number". */
export function describeOrderingProblem(problem: Pick<OrderingProblem, 'kind' | 'expected'>): string {
  return `${KIND_PHRASES[problem.kind]}, not ${EXPECTED_PHRASES[problem.expected]}`;
}

/**
 * Equality for operands written as text (`"== 5"`, `in [1, 2]`, `amount == 5` in a policy): JSON
 * equality, plus a number operand matches a numeric string value, because state read from
 * forms, query strings and some APIs carries numbers as strings.
 */
export function valuesMatch(actual: unknown, expected: unknown): boolean {
  if (jsonValuesEqual(actual, expected)) return true;
  if (typeof expected === 'number' && typeof actual === 'string') return asNumber(actual) === expected;
  if (typeof actual === 'number' && typeof expected === 'string') return asNumber(expected) === actual;
  return false;
}

const COMPARE_PREFIX = /^(>=|<=|==|!=|>|<)([\s\S]*)$/;
const MEMBERSHIP_PREFIX = /^(not\s+in|in)\s*\[/;

/**
 * Parses a condition once. Throws ValidationError for a malformed operator string (`"> abc"`,
 * `"in [a"`, `">="`): the caller wrote it, so it is a request error, not a failed condition.
 */
export function parseCondition(condition: unknown): ParsedCondition {
  if (typeof condition !== 'string') return { kind: 'literal', value: condition };
  const source = condition.trim();

  const membership = MEMBERSHIP_PREFIX.exec(source);
  if (membership) {
    const operator = membership[1]!.startsWith('not') ? 'not in' : 'in';
    if (!source.endsWith(']')) throw new ValidationError(`Condition "${condition}": the list is not closed with ]`);
    const items = splitListItems(source.slice(membership[0].length, -1), condition);
    return { kind: 'membership', operator, items, source };
  }

  const compare = COMPARE_PREFIX.exec(source);
  if (!compare) return { kind: 'literal', value: condition };
  const operator = compare[1] as ComparisonOperator;
  const text = compare[2]!.trim();
  if (text === '') throw new ValidationError(`Condition "${condition}": ${operator} needs a value after it`);
  const operand = parseOperandText(text, condition);
  if (isOrdering(operator) && asNumber(operand) === undefined && asIsoTime(operand) === undefined) {
    throw new ValidationError(`Condition "${condition}": ${operator} needs a number or an ISO date, got ${describeValue(operand)}`);
  }
  return { kind: 'compare', operator, operand, source };
}

/** Checks one value against one condition. A value that cannot be ordered fails; it never throws. */
export function evaluateCondition(actual: unknown, condition: unknown): ConditionResult {
  const parsed = parseCondition(condition);
  const expected = describeCondition(condition);
  if (actual === undefined) return { ok: false, reason: `missing (expected ${expected})` };

  switch (parsed.kind) {
    case 'literal': {
      const ok = jsonValuesEqual(actual, parsed.value);
      const value = describeValue(parsed.value);
      return { ok, reason: ok ? `equals ${value}` : `expected ${value}, got ${describeValue(actual)}` };
    }
    case 'membership': {
      const found = parsed.items.some((item) => valuesMatch(actual, item));
      const ok = parsed.operator === 'in' ? found : !found;
      return { ok, reason: ok ? `${describeValue(actual)} ${parsed.source}` : `expected ${parsed.source}, got ${describeValue(actual)}` };
    }
    case 'compare': {
      const problem = isOrdering(parsed.operator) ? orderingProblem(actual, parsed.operand) : undefined;
      if (problem) {
        // Fails closed, and says so: a value of the wrong type never satisfies an ordering.
        const uncomparable = { kind: problem.kind, expected: problem.expected };
        return { ok: false, reason: `expected ${parsed.source}, got ${describeValue(actual)} (cannot be compared: ${describeOrderingProblem(uncomparable)})`, uncomparable };
      }
      const ok = compareSatisfied(actual, parsed.operator, parsed.operand);
      return { ok, reason: ok ? `${describeValue(actual)} ${parsed.source}` : `expected ${parsed.source}, got ${describeValue(actual)}` };
    }
  }
}

/**
 * Checks every `field: condition` pair against a state object. Fields are dotted paths. A field
 * missing from the state fails with `missing: true`: absence is never read as success. A
 * malformed condition throws ValidationError naming its field.
 */
export function evaluateConditions(state: Record<string, unknown>, conditions: Record<string, unknown>): ConditionCheck[] {
  return Object.entries(conditions).map(([field, expected]) => {
    const actual = readPath(state, field);
    let result: ConditionResult;
    try {
      result = evaluateCondition(actual, expected);
    } catch (error) {
      if (error instanceof ValidationError) throw new ValidationError(`conditions.${field}: ${error.message}`, { field: `conditions.${field}` });
      throw error;
    }
    const missing = actual === undefined;
    const check: ConditionCheck = { field, expected, actual, ok: result.ok, reason: missing ? 'missing from state' : result.reason, missing };
    if (result.uncomparable) check.uncomparable = result.uncomparable;
    return check;
  });
}

/** Throws ValidationError (naming `label.field`) for the first malformed condition; for early checks. */
export function assertValidConditions(conditions: Record<string, unknown>, label = 'conditions'): void {
  for (const [field, condition] of Object.entries(conditions)) {
    try {
      parseCondition(condition);
    } catch (error) {
      if (error instanceof ValidationError) throw new ValidationError(`${label}.${field}: ${error.message}`, { field: `${label}.${field}` });
      throw error;
    }
  }
}

/** The condition as a person would read it: operator strings as written, literals as `== <json>`. */
export function describeCondition(condition: unknown): string {
  if (typeof condition === 'string') {
    const parsed = parseCondition(condition);
    if (parsed.kind !== 'literal') return parsed.source;
  }
  return `== ${describeValue(condition)}`;
}

/** A short JSON rendering for reasons; long values are cut so reasons stay readable. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function isOrdering(operator: ComparisonOperator): boolean {
  return operator !== '==' && operator !== '!=';
}

function compareSatisfied(actual: unknown, operator: ComparisonOperator, operand: unknown): boolean {
  if (operator === '==') return valuesMatch(actual, operand);
  if (operator === '!=') return !valuesMatch(actual, operand);
  const order = compareOrdered(actual, operand);
  if (order === undefined) return false;
  switch (operator) {
    case '>':
      return order > 0;
    case '>=':
      return order >= 0;
    case '<':
      return order < 0;
    case '<=':
      return order <= 0;
  }
}

/** One operand written as text: quoted string, true/false/null, number, or a bare word (string). */
function parseOperandText(text: string, condition: string): unknown {
  const quote = text[0];
  if (quote === '"' || quote === "'") {
    if (text.length < 2 || text[text.length - 1] !== quote) throw new ValidationError(`Condition "${condition}": unclosed quote in ${text}`);
    const inner = text.slice(1, -1);
    return inner.replace(/\\(.)/g, '$1');
  }
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null') return null;
  const number = asNumber(text);
  return number ?? text;
}

/** Splits `a, "b, c", 3` on commas outside quotes. */
function splitListItems(body: string, condition: string): unknown[] {
  if (body.trim() === '') return [];
  const items: string[] = [];
  let current = '';
  let quote: string | null = null;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (quote) {
      current += ch;
      if (ch === '\\' && i + 1 < body.length) current += body[++i];
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      current += ch;
    } else if (ch === ',') {
      items.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (quote) throw new ValidationError(`Condition "${condition}": unclosed quote in the list`);
  items.push(current);
  return items.map((item) => {
    const text = item.trim();
    if (text === '') throw new ValidationError(`Condition "${condition}": the list has an empty item`);
    return parseOperandText(text, condition);
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
