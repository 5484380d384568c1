import { escapeMrkdwn, inlineCode, truncate } from './mrkdwn.ts';

/*
 * The approve modal behind "Edit & approve" (and "Approve with comment"): the call's params as
 * fields built from the tool's input schema where it is flat, one JSON field otherwise, and a
 * comment. Pure builders and parsers; the Slack app opens it and submits it to the approval
 * service (the same `approve` the API calls).
 *
 * Field mapping, for a schema `{type: object, properties}` whose every property is a scalar:
 *   string with `enum` (strings)  -> static_select
 *   string                        -> plain_text_input
 *   number / integer              -> number_input (decimals for number only)
 *   boolean                       -> checkboxes with one box (unticked: false)
 * Anything else (nested objects, arrays, unions, params the schema does not list, more fields
 * than a modal should hold) is one JSON text field.
 */

type Block = Record<string, unknown>;
type View = Record<string, unknown>;

export const EDIT_MODAL_CALLBACK_ID = 'approval_edit_modal';
export const PARAM_BLOCK_PREFIX = 'param:';
export const PARAM_ACTION_ID = 'value';
export const PARAMS_JSON_BLOCK_ID = 'params_json';
export const PARAMS_JSON_ACTION_ID = 'params_json_input';
export const COMMENT_BLOCK_ID = 'comment';
export const COMMENT_INPUT_ACTION_ID = 'comment_input';

/** Slack's caps: a plain_text_input holds 3000 characters; we keep a modal to a few dozen inputs. */
const TEXT_INPUT_MAX = 3000;
const MAX_FIELDS = 40;
const OPTION_VALUE_MAX = 150;
const OPTIONS_MAX = 100;
const NAME_MAX = 200;

export type FieldKind = 'text' | 'number' | 'integer' | 'boolean' | 'select';
export interface ParamField {
  name: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  options?: string[];
}

/** What the modal edits: `fields` (one input per param), `json` (one text), or `none` (a comment only). */
export type EditMode = 'fields' | 'json' | 'none';

export interface EditModalInput {
  approvalId: string;
  intent: string;
  tool: string;
  /** False: the params may not be edited; the modal asks for a comment only. */
  editable: boolean;
  inputSchema: Record<string, unknown>;
  params: Record<string, unknown>;
}

/** What rides in `private_metadata` (at most 3000 characters: ids and a word). */
interface Metadata {
  approval_id: string;
  mode: EditMode;
}

function plainText(text: string): Record<string, unknown> {
  return { type: 'plain_text', text, emoji: true };
}

function fieldKind(property: Record<string, unknown>): Omit<ParamField, 'name' | 'required'> | null {
  const description = typeof property['description'] === 'string' ? truncate(property['description'], 150) : undefined;
  const enumValues = property['enum'];
  if (Array.isArray(enumValues)) {
    const strings = enumValues.every((v) => typeof v === 'string' && v.length > 0 && v.length <= OPTION_VALUE_MAX);
    if (!strings || enumValues.length === 0 || enumValues.length > OPTIONS_MAX || (property['type'] ?? 'string') !== 'string') return null;
    return { kind: 'select', options: enumValues as string[], description };
  }
  switch (property['type']) {
    case 'string':
      return { kind: 'text', description };
    case 'number':
      return { kind: 'number', description };
    case 'integer':
      return { kind: 'integer', description };
    case 'boolean':
      return { kind: 'boolean', description };
    default:
      return null;
  }
}

/** The schema's params as fields, or null when it is not flat enough for fields (a JSON field then). */
export function flatFields(schema: Record<string, unknown>, params: Record<string, unknown>): ParamField[] | null {
  const properties = schema['properties'];
  if ((schema['type'] ?? 'object') !== 'object' || properties === null || typeof properties !== 'object' || Array.isArray(properties)) return null;
  const required = Array.isArray(schema['required']) ? (schema['required'] as unknown[]) : [];
  // Stored schemas (jsonb) do not keep their key order: required params first, as listed, then by name.
  const rank = (name: string) => (required.includes(name) ? required.indexOf(name) : required.length);
  const entries = Object.entries(properties as Record<string, unknown>).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
  if (entries.length === 0 || entries.length > MAX_FIELDS) return null;
  // A param the schema does not list would have no field: its value would be lost.
  if (Object.keys(params).some((key) => !Object.hasOwn(properties, key))) return null;
  const fields: ParamField[] = [];
  for (const [name, property] of entries) {
    if (name.length > NAME_MAX || property === null || typeof property !== 'object') return null;
    const kind = fieldKind(property as Record<string, unknown>);
    if (!kind) return null;
    const value = params[name];
    // A value the field cannot show as it is (a number in a text field, a long text) goes to JSON.
    if (value !== undefined && !fitsField(kind.kind, value)) return null;
    fields.push({ name, required: required.includes(name), ...kind });
  }
  return fields;
}

function fitsField(kind: FieldKind, value: unknown): boolean {
  if (kind === 'text' || kind === 'select') return typeof value === 'string' && value.length <= TEXT_INPUT_MAX;
  if (kind === 'boolean') return typeof value === 'boolean';
  return typeof value === 'number' && Number.isFinite(value);
}

function fieldElement(field: ParamField, value: unknown): Block {
  const element: Block = { action_id: PARAM_ACTION_ID };
  switch (field.kind) {
    case 'select': {
      const option = (v: string) => ({ text: plainText(truncate(v, 75)), value: v });
      Object.assign(element, { type: 'static_select', options: field.options!.map(option) });
      if (typeof value === 'string' && field.options!.includes(value)) element['initial_option'] = option(value);
      return element;
    }
    case 'text':
      Object.assign(element, { type: 'plain_text_input', multiline: typeof value === 'string' && value.length > 80, max_length: TEXT_INPUT_MAX });
      if (typeof value === 'string' && value !== '') element['initial_value'] = value;
      return element;
    case 'number':
    case 'integer':
      Object.assign(element, { type: 'number_input', is_decimal_allowed: field.kind === 'number' });
      if (typeof value === 'number') element['initial_value'] = String(value);
      return element;
    case 'boolean': {
      const box = { text: plainText('Yes'), value: 'true' };
      Object.assign(element, { type: 'checkboxes', options: [box] });
      if (value === true) element['initial_options'] = [box];
      return element;
    }
  }
}

function fieldBlock(field: ParamField, value: unknown): Block {
  return {
    type: 'input',
    block_id: `${PARAM_BLOCK_PREFIX}${field.name}`,
    // Unticked is a value (false), so a checkbox never blocks the submit.
    optional: field.kind === 'boolean' || !field.required,
    label: plainText(truncate(field.name, 2000)),
    ...(field.description ? { hint: plainText(field.description) } : {}),
    element: fieldElement(field, value),
  };
}

function jsonBlock(params: Record<string, unknown>): Block {
  return {
    type: 'input',
    block_id: PARAMS_JSON_BLOCK_ID,
    label: plainText('Params (JSON)'),
    hint: plainText("Checked against the tool's input schema before anything runs."),
    element: { type: 'plain_text_input', action_id: PARAMS_JSON_ACTION_ID, multiline: true, max_length: TEXT_INPUT_MAX, initial_value: JSON.stringify(params, null, 2) },
  };
}

function commentBlock(): Block {
  return {
    type: 'input',
    block_id: COMMENT_BLOCK_ID,
    optional: true,
    label: plainText('Comment'),
    element: { type: 'plain_text_input', action_id: COMMENT_INPUT_ACTION_ID, multiline: true, max_length: 2000 },
  };
}

/** Which form the params take in the modal; null when they are too large for Slack's text input. */
export function editModeFor(input: Pick<EditModalInput, 'editable' | 'inputSchema' | 'params'>): { mode: EditMode; fields: ParamField[] } | null {
  if (!input.editable) return { mode: 'none', fields: [] };
  const fields = flatFields(input.inputSchema, input.params);
  if (fields) return { mode: 'fields', fields };
  return JSON.stringify(input.params, null, 2).length <= TEXT_INPUT_MAX ? { mode: 'json', fields: [] } : null;
}

/** The `views.open` view; null when the params cannot be edited in Slack (too large): use the API. */
export function editApproveModal(input: EditModalInput): View | null {
  const form = editModeFor(input);
  if (!form) return null;
  const metadata: Metadata = { approval_id: input.approvalId, mode: form.mode };
  const intro =
    form.mode === 'none'
      ? `Approving: *${escapeMrkdwn(input.intent, 500)}* (${inlineCode(input.tool, 200)})\nThe params of this call may not be edited; your comment goes with the approval.`
      : `Approving: *${escapeMrkdwn(input.intent, 500)}* (${inlineCode(input.tool, 200)})\nChange what should be different. The edited call is checked against the tool's schema and policy again before it runs, and the thread shows what you changed.`;
  const params = form.mode === 'fields' ? form.fields.map((field) => fieldBlock(field, input.params[field.name])) : form.mode === 'json' ? [jsonBlock(input.params)] : [];
  return {
    type: 'modal',
    callback_id: EDIT_MODAL_CALLBACK_ID,
    private_metadata: JSON.stringify(metadata),
    title: plainText(form.mode === 'none' ? 'Approve' : 'Edit & approve'),
    submit: plainText('Approve'),
    close: plainText('Cancel'),
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: intro } }, ...params, commentBlock()],
  };
}

/** The modal's metadata; null when it is not ours. */
export function editModalMetadata(raw: string): Metadata | null {
  try {
    const parsed = JSON.parse(raw) as Partial<Metadata>;
    if (typeof parsed.approval_id !== 'string' || !['fields', 'json', 'none'].includes(parsed.mode ?? '')) return null;
    return { approval_id: parsed.approval_id, mode: parsed.mode! };
  } catch {
    return null;
  }
}

/** One input's state as Slack sends it in `view.state.values`. */
interface InputState {
  type?: string;
  value?: string | null;
  selected_option?: { value: string } | null;
  selected_options?: Array<{ value: string }>;
}
type StateValues = Record<string, Record<string, InputState>>;

/** What the submit said: the params (absent for a comment only), the comment, or per-block errors. */
export type EditSubmission = { ok: true; params?: Record<string, unknown>; comment?: string } | { ok: false; errors: Record<string, string> };

/**
 * The params and comment from a submitted modal. Fields mode rebuilds params from the inputs
 * (an emptied optional field drops the param; an unticked box is false only when the param was
 * there before, so an untouched form edits nothing); JSON mode parses the text.
 */
export function readEditSubmission(mode: EditMode, values: StateValues, pending: Record<string, unknown>): EditSubmission {
  const comment = values[COMMENT_BLOCK_ID]?.[COMMENT_INPUT_ACTION_ID]?.value?.trim();
  const withComment = comment ? { comment } : {};
  if (mode === 'none') return { ok: true, ...withComment };
  if (mode === 'json') {
    const text = values[PARAMS_JSON_BLOCK_ID]?.[PARAMS_JSON_ACTION_ID]?.value ?? '';
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return { ok: false, errors: { [PARAMS_JSON_BLOCK_ID]: truncate(`Not valid JSON: ${(error as Error).message}`, 150) } };
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, errors: { [PARAMS_JSON_BLOCK_ID]: 'The params must be a JSON object.' } };
    return { ok: true, params: parsed as Record<string, unknown>, ...withComment };
  }
  const params: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const [blockId, actions] of Object.entries(values)) {
    if (!blockId.startsWith(PARAM_BLOCK_PREFIX)) continue;
    const name = blockId.slice(PARAM_BLOCK_PREFIX.length);
    const state = actions[PARAM_ACTION_ID];
    if (!state) continue;
    if (state.type === 'checkboxes') {
      const ticked = (state.selected_options ?? []).length > 0;
      if (ticked || Object.hasOwn(pending, name)) params[name] = ticked;
    } else if (state.type === 'static_select') {
      if (state.selected_option) params[name] = state.selected_option.value;
    } else if (state.type === 'number_input') {
      if (state.value === null || state.value === undefined || state.value === '') continue;
      const number = Number(state.value);
      if (Number.isFinite(number)) params[name] = number;
      else errors[blockId] = 'Enter a number.';
    } else if (state.value !== null && state.value !== undefined && state.value !== '') {
      params[name] = state.value;
    }
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, params, ...withComment };
}

/**
 * Schema problems (`{path: 'params.amount', message}`) as modal errors on the blocks they name.
 * A problem no field shows (the params as a whole) goes on the first params block.
 */
export function modalErrorsFor(mode: EditMode, problems: Array<{ path: string; message: string }>, fieldNames: readonly string[]): Record<string, string> {
  const errors: Record<string, string> = {};
  const add = (blockId: string, message: string) => {
    errors[blockId] = truncate(errors[blockId] ? `${errors[blockId]}; ${message}` : message, 150);
  };
  const fallback = fallbackBlock(mode, fieldNames);
  for (const problem of problems) {
    const field = /^params\.([^.]+)/.exec(problem.path)?.[1];
    if (mode === 'fields' && field !== undefined && fieldNames.includes(field)) add(`${PARAM_BLOCK_PREFIX}${field}`, problem.message);
    else add(fallback, mode === 'json' ? `${problem.path}: ${problem.message}` : `${problem.path.replace(/^params\.?/, '') || 'params'} ${problem.message}`);
  }
  return errors;
}

function fallbackBlock(mode: EditMode, fieldNames: readonly string[]): string {
  if (mode === 'json') return PARAMS_JSON_BLOCK_ID;
  return mode === 'fields' && fieldNames.length > 0 ? `${PARAM_BLOCK_PREFIX}${fieldNames[0]}` : COMMENT_BLOCK_ID;
}

/** A refusal that is not about one field (policy, entity, not editable, who decides): on the first params block. */
export function modalErrorFor(mode: EditMode, fieldNames: readonly string[], message: string): Record<string, string> {
  return { [fallbackBlock(mode, fieldNames)]: truncate(message, 150) };
}
