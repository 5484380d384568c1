import { describe, expect, it } from 'vitest';
import {
  COMMENT_INPUT_ACTION_ID,
  COMMENT_BLOCK_ID,
  EDIT_MODAL_CALLBACK_ID,
  PARAMS_JSON_ACTION_ID,
  PARAMS_JSON_BLOCK_ID,
  editApproveModal,
  editModalMetadata,
  modalErrorsFor,
  readEditSubmission,
} from '../../src/slack/edit-modal.ts';

type Node = Record<string, any>;

const flatSchema = {
  type: 'object',
  properties: {
    invoice_id: { type: 'string', description: 'The invoice' },
    amount: { type: 'number' },
    count: { type: 'integer' },
    currency: { type: 'string', enum: ['EUR', 'USD'] },
    notify: { type: 'boolean' },
  },
  required: ['invoice_id', 'amount'],
};
const params = { invoice_id: 'inv_1', amount: 120.5, currency: 'EUR', notify: true };
const modal = (over: Partial<Parameters<typeof editApproveModal>[0]> = {}) =>
  editApproveModal({ approvalId: 'apr_1', intent: 'refund <x>', tool: 'pay.refund', editable: true, inputSchema: flatSchema, params, ...over });

describe('editApproveModal', () => {
  it('maps a flat schema to one input per param, filled with the pending values', () => {
    const view = modal()!;
    expect(view).toMatchObject({ type: 'modal', callback_id: EDIT_MODAL_CALLBACK_ID, title: { text: 'Edit & approve' }, submit: { text: 'Approve' } });
    expect(editModalMetadata(view.private_metadata as string)).toEqual({ approval_id: 'apr_1', mode: 'fields' });
    const inputs = (view.blocks as Node[]).filter((b) => b.type === 'input');
    expect(inputs.map((b) => [b.block_id, b.element.type, b.optional])).toEqual([
      ['param:invoice_id', 'plain_text_input', false],
      ['param:amount', 'number_input', false],
      ['param:count', 'number_input', true],
      ['param:currency', 'static_select', true],
      ['param:notify', 'checkboxes', true],
      [COMMENT_BLOCK_ID, 'plain_text_input', true],
    ]);
    const [invoice, amount, count, currency, notify] = inputs;
    expect(invoice!.element.initial_value).toBe('inv_1');
    expect(invoice!.hint.text).toBe('The invoice');
    expect(amount!.element).toMatchObject({ initial_value: '120.5', is_decimal_allowed: true });
    expect(count!.element).toMatchObject({ is_decimal_allowed: false });
    expect(count!.element.initial_value).toBeUndefined();
    expect(currency!.element.initial_option).toMatchObject({ value: 'EUR' });
    expect(currency!.element.options.map((o: Node) => o.value)).toEqual(['EUR', 'USD']);
    expect(notify!.element.initial_options).toHaveLength(1);
    expect(JSON.stringify((view.blocks as Node[])[0])).toContain('refund &lt;x&gt;');
  });

  it('falls back to one JSON field for nested schemas and for params the schema does not list', () => {
    const nested = modal({ inputSchema: { type: 'object', properties: { customer: { type: 'object' } } }, params: { customer: { id: 'c1' } } })!;
    const inputs = (nested.blocks as Node[]).filter((b) => b.type === 'input');
    expect(inputs.map((b) => b.block_id)).toEqual([PARAMS_JSON_BLOCK_ID, COMMENT_BLOCK_ID]);
    expect(JSON.parse(inputs[0]!.element.initial_value)).toEqual({ customer: { id: 'c1' } });
    expect(editModalMetadata(nested.private_metadata as string)?.mode).toBe('json');
    const unlisted = modal({ params: { ...params, extra: 1 } })!;
    expect(editModalMetadata(unlisted.private_metadata as string)?.mode).toBe('json');
    expect(modal({ inputSchema: { type: 'object' } })!.blocks).toHaveLength(3);
  });

  it('asks for a comment only when the params may not be edited; refuses params too large for Slack', () => {
    const view = modal({ editable: false })!;
    expect(view.title).toMatchObject({ text: 'Approve' });
    expect((view.blocks as Node[]).filter((b) => b.type === 'input').map((b) => b.block_id)).toEqual([COMMENT_BLOCK_ID]);
    expect(modal({ inputSchema: {}, params: { blob: 'x'.repeat(4000) } })).toBeNull();
  });
});

describe('readEditSubmission', () => {
  const state = (values: Record<string, Node>) => Object.fromEntries(Object.entries(values).map(([name, s]) => [`param:${name}`, { value: s }]));

  it('rebuilds params from the inputs; an unticked box is false only for a param that was there', () => {
    const values = {
      ...state({
        invoice_id: { type: 'plain_text_input', value: 'inv_2' },
        amount: { type: 'number_input', value: '80' },
        count: { type: 'number_input', value: null },
        currency: { type: 'static_select', selected_option: { value: 'USD' } },
        notify: { type: 'checkboxes', selected_options: [] },
      }),
      [COMMENT_BLOCK_ID]: { [COMMENT_INPUT_ACTION_ID]: { type: 'plain_text_input', value: ' ok ' } },
    };
    expect(readEditSubmission('fields', values, params)).toEqual({ ok: true, params: { invoice_id: 'inv_2', amount: 80, currency: 'USD', notify: false }, comment: 'ok' });
    expect(readEditSubmission('fields', values, { invoice_id: 'inv_1', amount: 1 })).toMatchObject({ params: { invoice_id: 'inv_2', amount: 80, currency: 'USD' } });
    expect(readEditSubmission('fields', state({ amount: { type: 'number_input', value: 'abc' } }), params)).toEqual({ ok: false, errors: { 'param:amount': 'Enter a number.' } });
  });

  it('parses the JSON field, and says where it is wrong', () => {
    const json = (text: string) => ({ [PARAMS_JSON_BLOCK_ID]: { [PARAMS_JSON_ACTION_ID]: { type: 'plain_text_input', value: text } } });
    expect(readEditSubmission('json', json('{"a": {"b": 1}}'), {})).toEqual({ ok: true, params: { a: { b: 1 } } });
    expect(readEditSubmission('json', json('{"a": '), {})).toMatchObject({ ok: false, errors: { [PARAMS_JSON_BLOCK_ID]: expect.stringMatching(/^Not valid JSON/) } });
    expect(readEditSubmission('json', json('[1]'), {})).toEqual({ ok: false, errors: { [PARAMS_JSON_BLOCK_ID]: 'The params must be a JSON object.' } });
    expect(readEditSubmission('none', {}, {})).toEqual({ ok: true });
  });
});

describe('modalErrorsFor', () => {
  it('puts each schema problem on its field, and the rest on the first params block', () => {
    const problems = [
      { path: 'params.amount', message: 'must be >= 1' },
      { path: 'params', message: 'must NOT have additional properties' },
      { path: 'params.currency', message: 'must be equal to one of the allowed values' },
    ];
    expect(modalErrorsFor('fields', problems, ['invoice_id', 'amount', 'currency'])).toEqual({
      'param:amount': 'must be >= 1',
      'param:invoice_id': 'params must NOT have additional properties',
      'param:currency': 'must be equal to one of the allowed values',
    });
    expect(modalErrorsFor('json', problems.slice(0, 1), [])).toEqual({ [PARAMS_JSON_BLOCK_ID]: 'params.amount: must be >= 1' });
  });
});
