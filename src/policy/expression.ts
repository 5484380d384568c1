import jsep from 'jsep';
import type { Expression } from 'jsep';
import { ValidationError } from '../errors.ts';
import { asIsoTime, asNumber, compareOrdered, orderingProblem, readPath, valuesMatch, type OrderingProblem } from './conditions.ts';

/**
 * Policy `when` expressions: `action == git_push and branch == main`,
 * `params.amount >= 1000 or env in [prod, staging]`, `not (risk == low)`.
 *
 * The language is deliberately small: `and`, `or`, `not`, `==`, `!=`, `<`, `<=`, `>`, `>=`,
 * `in`, `not in`, parentheses, `[a, b]` lists, strings, numbers, `true`, `false`, `null`. No
 * function calls and no arithmetic: a policy must be readable and must not run code.
 *
 * Names on the left of a comparison (or standing alone) are looked up in the call context; a bare
 * word on the right, or inside a list, is a string, so `branch == main` needs no quotes.
 *
 * An ordered comparison (`<`, `<=`, `>`, `>=`) on a value that is not a number or an ISO date
 * (`[5000]`, `"5,000"`, `"0x1388"`, an object, 1e400) is neither true nor false: it is `unknown`,
 * and `and` / `or` / `not` carry `unknown` through (three-valued logic). The policy decides what
 * `unknown` means for each effect (it fails closed) and reports the values it could not compare.
 */

/** Longest `when` accepted, in characters. */
export const MAX_EXPRESSION_LENGTH = 2000;
/** Deepest nesting of ( and [ accepted; checked before parsing (the parser recurses per level). */
export const MAX_EXPRESSION_DEPTH = 32;

export interface ExpressionContext {
  action?: string;
  tool?: string;
  agent_id?: string;
  env?: string;
  workflow?: string;
  risk?: string;
  params?: Record<string, unknown>;
  variables?: Record<string, unknown>;
  [key: string]: unknown;
}

/** True, false, or unknown: an ordered comparison the result depends on could not be made. */
export type Truth = boolean | 'unknown';

/** A comparison that could not be made, for traces and answers. */
export interface UncomparableValue {
  /** The comparison, rebuilt from the rule: `params.amount > 1000`. */
  expression: string;
  /** The side that could not be compared, as written: `params.amount`. */
  operand: string;
  kind: OrderingProblem['kind'];
  expected: OrderingProblem['expected'];
}

export interface ExpressionResult {
  value: Truth;
  /** Set only when `value` is unknown: the comparisons that made it so. */
  uncomparable: readonly UncomparableValue[];
}

export interface CompiledExpression {
  source: string;
  evaluate(context: ExpressionContext): ExpressionResult;
}

type ComparisonOperator = '==' | '!=' | '<' | '<=' | '>' | '>=';

type ValueNode = { kind: 'literal'; value: unknown } | { kind: 'path'; path: string[] };

type ConditionNode =
  | { kind: 'and' | 'or'; left: ConditionNode; right: ConditionNode }
  | { kind: 'not'; operand: ConditionNode }
  | { kind: 'compare'; operator: ComparisonOperator; left: ValueNode; right: ValueNode }
  | { kind: 'membership'; operator: 'in' | 'not in'; left: ValueNode; list: ValueNode[] | ValueNode }
  | { kind: 'truthy'; value: ValueNode };

/** Names that always mean the context's own field: `params.env` must never stand in for `env`. */
const TOP_LEVEL_NAMES = new Set(['action', 'tool', 'agent_id', 'env', 'workflow', 'risk', 'params', 'variables']);

const COMPARISON_OPERATORS = new Set<string>(['==', '!=', '<', '<=', '>', '>=']);
const MEMBERSHIP_OPERATORS = new Set<string>(['in', 'not in']);
const OPERATOR_WORDS = new Set<string>(['and', 'or', 'not', 'in']);

// jsep keeps its operators and hooks in global state: configure it once, when this module loads.
jsep.removeAllBinaryOps();
jsep.removeAllUnaryOps();
jsep.addBinaryOp('or', 1);
jsep.addBinaryOp('and', 2);
for (const operator of ['==', '!=']) jsep.addBinaryOp(operator, 6);
for (const operator of ['<', '<=', '>', '>=', 'in', 'not in']) jsep.addBinaryOp(operator, 7);
jsep.addUnaryOp('not');
jsep.addUnaryOp('-'); // negative numbers only; checked when compiling

// jsep records no positions; note where each token starts so compile errors can point at it.
// Numeric literals skip jsep's after-token hook, so they are not pushed either.
const tokenStarts: number[] = [];
jsep.hooks.add('gobble-token', function noteTokenStart() {
  const code = this.code;
  const numeric = (code >= 48 && code <= 57) || code === 46;
  if (!numeric) tokenStarts.push(this.index);
});
jsep.hooks.add('after-token', function attachTokenStart(env) {
  const start = tokenStarts.pop();
  if (env.node && start !== undefined && env.node.start === undefined) env.node.start = start;
});

const CACHE_LIMIT = 500;
const compiledCache = new Map<string, CompiledExpression>();

/**
 * Parses and checks a `when` expression. Throws ValidationError naming the problem and its
 * character position (0-based). Results are cached by source text (at most CACHE_LIMIT, oldest
 * dropped first): rules are evaluated on every call, parsed once.
 */
export function compileExpression(source: string): CompiledExpression {
  const cached = compiledCache.get(source);
  if (cached) return cached;

  assertWithinLimits(source);
  const root = toCondition(parse(source), source);
  const compiled: CompiledExpression = { source, evaluate: (context) => evaluateCondition(root, context) };

  if (compiledCache.size >= CACHE_LIMIT) {
    const oldest = compiledCache.keys().next();
    if (!oldest.done) compiledCache.delete(oldest.value);
  }
  compiledCache.set(source, compiled);
  return compiled;
}

/** Throws ValidationError, naming `label` (the request field), when `source` is no valid expression. */
export function assertValidExpression(source: string, label: string): void {
  try {
    compileExpression(source);
  } catch (error) {
    if (error instanceof ValidationError) throw new ValidationError(`${label}: ${error.message}`, { field: label, ...(error.details as object) });
    throw error;
  }
}

/**
 * Resolves a name the way policies read it: top-level context fields first, then (for
 * convenience) `params.<name>`, then `variables.<name>`.
 */
export function resolveContextPath(context: ExpressionContext, path: readonly string[]): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return undefined;
  let base: unknown;
  if (TOP_LEVEL_NAMES.has(head) || Object.hasOwn(context, head)) {
    base = Object.hasOwn(context, head) ? context[head] : undefined;
  } else {
    base = readOwn(context.params, head);
    if (base === undefined) base = readOwn(context.variables, head);
  }
  let current = base;
  for (const segment of rest) {
    current = readPath(current, segment);
    if (current === undefined) return undefined;
  }
  return current;
}

/**
 * Length and nesting caps, by one linear scan before jsep sees the text: jsep recurses once per
 * ( or [ level, and about 1,600 levels overflow the stack (a 500 instead of a 400).
 */
function assertWithinLimits(source: string): void {
  if (source.length > MAX_EXPRESSION_LENGTH) {
    throw new ValidationError(`invalid expression: it is ${source.length} characters long; the limit is ${MAX_EXPRESSION_LENGTH}`, {
      expression: shorten(source),
      problem: 'too long',
      limit: MAX_EXPRESSION_LENGTH,
    });
  }
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '(' || ch === '[') {
      depth++;
      if (depth > MAX_EXPRESSION_DEPTH) {
        throw expressionError(source, `nested deeper than ${MAX_EXPRESSION_DEPTH} levels of ( and [`, i, { limit: MAX_EXPRESSION_DEPTH });
      }
    } else if (ch === ')' || ch === ']') {
      depth = Math.max(0, depth - 1);
    }
  }
}

function parse(source: string): Expression {
  if (source.trim() === '') throw expressionError(source, 'the expression is empty', 0);
  tokenStarts.length = 0;
  try {
    return jsep(normalizeNotIn(source));
  } catch (error) {
    const { description, index } = error as { description?: string; index?: number };
    if (typeof description !== 'string' || typeof index !== 'number') throw error;
    throw expressionError(source, description + hintFor(source, index), index);
  }
}

/**
 * `not in` is one operator to jsep, written with exactly one space. Collapse other spacing
 * (outside quotes) while keeping every character position, so error positions stay true.
 * Scanned by hand: the regular expression for it backtracked quadratically on unclosed quotes.
 */
function normalizeNotIn(source: string): string {
  let out = '';
  let quote: string | null = null;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]!;
    if (quote) {
      out += ch;
      if (ch === '\\' && i + 1 < source.length) out += source[++i];
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === '"' || ch === "'") quote = ch;
    const end = notInEndingAt(source, i);
    if (end === undefined) {
      out += ch;
      continue;
    }
    out += ' '.repeat(end - i - 6) + 'not in';
    i = end - 1;
  }
  return out;
}

/** Where `not <spaces> in` starting at `start` ends, as whole words; undefined if it is not there. */
function notInEndingAt(source: string, start: number): number | undefined {
  if (!source.startsWith('not', start) || isWordChar(source[start - 1])) return undefined;
  let i = start + 3;
  const spaces = i;
  while (i < source.length && /\s/.test(source[i]!)) i++;
  if (i === spaces || !source.startsWith('in', i) || isWordChar(source[i + 2])) return undefined;
  return i + 2;
}

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && /\w/.test(ch);
}

/** A pointer from the characters people tend to type to the words this language uses. */
function hintFor(source: string, index: number): string {
  const rest = source.slice(index);
  if (rest.startsWith('&')) return ' (use "and" instead of &&)';
  if (rest.startsWith('|')) return ' (use "or" instead of ||)';
  if (rest.startsWith('!')) return ' (use "not" instead of !)';
  if (rest.startsWith('=')) return ' (use == to compare)';
  if (/^[+*/%^~]/.test(rest) || rest.startsWith('-')) return ' (arithmetic is not supported)';
  return '';
}

function expressionError(source: string, problem: string, position: number, extra: Record<string, unknown> = {}): ValidationError {
  return new ValidationError(`invalid expression "${shorten(source)}": ${problem} at character ${position}`, { expression: source, position, problem, ...extra });
}

/** The expression as quoted in messages: long ones are cut so the message stays readable. */
function shorten(source: string): string {
  return source.length > 120 ? `${source.slice(0, 117)}...` : source;
}

function positionOf(node: Expression): number {
  if (typeof node.start === 'number') return node.start;
  if (node.type === 'BinaryExpression') return positionOf(node.left as Expression);
  return 0;
}

function toCondition(node: Expression, source: string): ConditionNode {
  const fail = (problem: string, at: Expression = node): never => {
    throw expressionError(source, problem, positionOf(at));
  };
  switch (node.type) {
    case 'BinaryExpression': {
      const operator = node.operator as string;
      const left = node.left as Expression;
      const right = node.right as Expression;
      if (operator === 'and' || operator === 'or') {
        return { kind: operator, left: toCondition(left, source), right: toCondition(right, source) };
      }
      // jsep binds `not` tighter than a comparison; read `not a == b` as `not (a == b)`.
      if (left.type === 'UnaryExpression' && left.operator === 'not') {
        const inner: Expression = { type: 'BinaryExpression', operator, left: left.argument, right, start: left.start };
        return { kind: 'not', operand: toCondition(inner, source) };
      }
      if (COMPARISON_OPERATORS.has(operator)) {
        const compare = {
          kind: 'compare' as const,
          operator: operator as ComparisonOperator,
          left: toValue(left, source, 'lookup'),
          right: toValue(right, source, 'word'),
        };
        assertOrderableLiterals(compare, source, node);
        return compare;
      }
      if (MEMBERSHIP_OPERATORS.has(operator)) {
        return { kind: 'membership', operator: operator as 'in' | 'not in', left: toValue(left, source, 'lookup'), list: toList(right, operator, source) };
      }
      return fail(`operator ${operator} is not supported`);
    }
    case 'UnaryExpression':
      if (node.operator === 'not') return { kind: 'not', operand: toCondition(node.argument as Expression, source) };
      return { kind: 'truthy', value: toValue(node, source, 'lookup') };
    case 'Identifier':
    case 'MemberExpression':
    case 'Literal':
      return { kind: 'truthy', value: toValue(node, source, 'lookup') };
    case 'ArrayExpression':
      return fail('a list can only follow in or not in');
    default:
      return rejectUnsupported(node, source);
  }
}

/**
 * `branch > main` could never be true, and would now make a deny rule match every call that has
 * a branch: ordering against a literal that is not a number or an ISO date is a mistake in the rule.
 */
function assertOrderableLiterals(compare: Extract<ConditionNode, { kind: 'compare' }>, source: string, node: Expression): void {
  if (compare.operator === '==' || compare.operator === '!=') return;
  for (const side of [compare.left, compare.right]) {
    if (side.kind === 'literal' && asNumber(side.value) === undefined && asIsoTime(side.value) === undefined) {
      throw expressionError(source, `${compare.operator} needs a number or an ISO date, got ${operandText(side)}`, positionOf(node));
    }
  }
}

/**
 * A value operand. `lookup`: a bare name is read from the context. `word`: a bare name is the
 * string itself (`branch == main`). Dotted paths are always read from the context.
 */
const VALUE_ROOTS = new Set(['params', 'variables']);

function toValue(node: Expression, source: string, bareName: 'lookup' | 'word'): ValueNode {
  const fail = (problem: string): never => {
    throw expressionError(source, problem, positionOf(node));
  };
  switch (node.type) {
    case 'Literal':
      return { kind: 'literal', value: node.value };
    case 'Identifier':
      return bareName === 'word' ? { kind: 'literal', value: node.name } : { kind: 'path', path: [node.name as string] };
    case 'MemberExpression': {
      const path = memberPath(node, source);
      // On the right, a dotted bare word is text (`tool == billing.charge`), unless it reads
      // explicitly from the call's params or variables (`amount > variables.limit`).
      if (bareName === 'word' && !VALUE_ROOTS.has(path[0]!)) return { kind: 'literal', value: path.join('.') };
      return { kind: 'path', path };
    }
    case 'UnaryExpression': {
      const argument = node.argument as Expression;
      if (node.operator === '-' && argument.type === 'Literal' && typeof argument.value === 'number') {
        return { kind: 'literal', value: -argument.value };
      }
      if (node.operator === '-') return fail('- can only make a number negative (arithmetic is not supported)');
      return fail('not cannot be compared; put the comparison in parentheses after not');
    }
    case 'BinaryExpression':
      return fail(`${node.operator as string} cannot be used as a value (comparisons cannot be chained; join them with and / or)`);
    case 'ArrayExpression':
      return fail('a list can only follow in or not in');
    default:
      return rejectUnsupported(node, source);
  }
}

function toList(node: Expression, operator: string, source: string): ValueNode[] | ValueNode {
  if (node.type === 'ArrayExpression') {
    const elements = node.elements as (Expression | null)[];
    return elements.map((element) => {
      if (element === null) throw expressionError(source, 'the list has an empty item', positionOf(node));
      return toValue(element, source, 'word');
    });
  }
  // A dotted path may name a list held in the context: `agent_id in variables.allowed_agents`.
  if (node.type === 'MemberExpression') return { kind: 'path', path: memberPath(node, source) };
  throw expressionError(source, `${operator} needs a list like [a, b] or a dotted path to one`, positionOf(node));
}

function memberPath(node: Expression, source: string): string[] {
  if (node.type === 'Identifier') return [node.name as string];
  if (node.type !== 'MemberExpression') {
    throw expressionError(source, 'only names can be followed by .field', positionOf(node));
  }
  const property = node.property as Expression;
  let segment: string;
  if (!node.computed && property.type === 'Identifier') {
    segment = property.name as string;
  } else if (node.computed && property.type === 'Literal' && (typeof property.value === 'string' || typeof property.value === 'number')) {
    segment = String(property.value);
  } else {
    throw expressionError(source, 'a [..] field name must be a quoted string or a number', positionOf(node));
  }
  return [...memberPath(node.object as Expression, source), segment];
}

function rejectUnsupported(node: Expression, source: string): never {
  const at = positionOf(node);
  switch (node.type) {
    case 'CallExpression': {
      let name = '';
      try {
        name = ` (${memberPath(node.callee as Expression, source).join('.')})`;
      } catch {
        // the callee is not a plain name; the position is enough
      }
      throw expressionError(source, `function calls are not allowed${name}`, at);
    }
    case 'Compound': {
      const second = (node.body as Expression[])[1] ?? node;
      const position = positionOf(second);
      if (source[position] === '-') throw expressionError(source, 'arithmetic is not supported (quote text that contains -, like "release-bot")', position);
      if (second.type === 'Identifier' && OPERATOR_WORDS.has(second.name as string)) {
        throw expressionError(source, `${second.name as string} needs an expression on both sides`, position);
      }
      throw expressionError(source, 'expected one expression; join conditions with and / or', position);
    }
    case 'ConditionalExpression':
      throw expressionError(source, 'the ?: operator is not supported', at);
    case 'ThisExpression':
      throw expressionError(source, '"this" is not supported', at);
    default:
      throw expressionError(source, `${node.type} is not supported`, at);
  }
}

const TRUE: ExpressionResult = Object.freeze({ value: true, uncomparable: Object.freeze([]) });
const FALSE: ExpressionResult = Object.freeze({ value: false, uncomparable: Object.freeze([]) });

/** Three-valued: `unknown and false` is false, `unknown or true` is true, `not unknown` is unknown. */
function evaluateCondition(node: ConditionNode, context: ExpressionContext): ExpressionResult {
  switch (node.kind) {
    case 'and':
    case 'or': {
      const decisive = node.kind === 'or'; // the value that settles it alone
      const left = evaluateCondition(node.left, context);
      if (left.value === decisive) return left;
      const right = evaluateCondition(node.right, context);
      if (right.value === decisive || left.value !== 'unknown') return right;
      return { value: 'unknown', uncomparable: [...left.uncomparable, ...right.uncomparable] };
    }
    case 'not': {
      const operand = evaluateCondition(node.operand, context);
      return operand.value === 'unknown' ? operand : truth(!operand.value);
    }
    case 'truthy':
      return truth(Boolean(valueOf(node.value, context)));
    case 'compare':
      return evaluateComparison(node, context);
    case 'membership': {
      const left = valueOf(node.left, context);
      if (left === undefined) return truth(node.operator === 'not in');
      const items = Array.isArray(node.list) ? node.list.map((item) => valueOf(item, context)) : valueOf(node.list, context);
      const found = Array.isArray(items) && items.some((item) => item !== undefined && valuesMatch(left, item));
      return truth(node.operator === 'in' ? found : !found);
    }
  }
}

function evaluateComparison(node: Extract<ConditionNode, { kind: 'compare' }>, context: ExpressionContext): ExpressionResult {
  const left = valueOf(node.left, context);
  const right = valueOf(node.right, context);
  // Missing values: equality never holds, inequality always does, ordering never does.
  if (left === undefined || right === undefined) return truth(node.operator === '!=');
  if (node.operator === '==') return truth(valuesMatch(left, right));
  if (node.operator === '!=') return truth(!valuesMatch(left, right));
  const order = compareOrdered(left, right);
  if (order === undefined) {
    const problem = orderingProblem(left, right)!;
    const operand = operandText(problem.side === 'left' ? node.left : node.right);
    const expression = `${operandText(node.left)} ${node.operator} ${operandText(node.right)}`;
    return { value: 'unknown', uncomparable: [{ expression, operand, kind: problem.kind, expected: problem.expected }] };
  }
  if (node.operator === '<') return truth(order < 0);
  if (node.operator === '<=') return truth(order <= 0);
  if (node.operator === '>') return truth(order > 0);
  return truth(order >= 0);
}

function truth(value: boolean): ExpressionResult {
  return value ? TRUE : FALSE;
}

function operandText(node: ValueNode): string {
  return node.kind === 'path' ? node.path.join('.') : (JSON.stringify(node.value) ?? String(node.value));
}

function valueOf(node: ValueNode, context: ExpressionContext): unknown {
  return node.kind === 'literal' ? node.value : resolveContextPath(context, node.path);
}

function readOwn(source: Record<string, unknown> | undefined, key: string): unknown {
  return source && typeof source === 'object' && Object.hasOwn(source, key) ? source[key] : undefined;
}
