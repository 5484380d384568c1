import { describe, expect, it } from 'vitest';
import { checkEntityResolution, idPrefix } from '../../src/calls/entity-check.ts';
import { ValidationError } from '../../src/errors.ts';

describe('idPrefix', () => {
  it('is the part up to and including the first underscore', () => {
    expect(idPrefix('cust_123')).toBe('cust_');
    expect(idPrefix('inv_2024_01')).toBe('inv_');
    expect(idPrefix('12345')).toBeUndefined();
    expect(idPrefix('_abc')).toBeUndefined();
    expect(idPrefix('cust_')).toBeUndefined();
    expect(idPrefix('a-b_1')).toBeUndefined();
  });
});

describe('checkEntityResolution', () => {
  const resolution = { entity_id: 'cust_123', source: 'crm.search', resolved_at: '2024-05-01T10:00:00Z' };

  it('passes when every field of the entity kind matches', () => {
    const result = checkEntityResolution(resolution, { customer_id: 'cust_123', amount: 50 }, { customer_id: 'cust_123' });
    expect(result).toEqual({ ok: true, checked: ['params.customer_id', 'variables.customer_id'] });
  });

  it('blocks a param that points at another entity with the same prefix', () => {
    const result = checkEntityResolution(resolution, { customer_id: 'cust_999' });
    expect(result).toEqual({
      ok: false,
      reason: 'params.customer_id is "cust_999" but the resolved entity is "cust_123"',
      mismatches: [{ field: 'params.customer_id', expected: 'cust_123', actual: 'cust_999' }],
      checked: ['params.customer_id'],
    });
  });

  it('does not let a user_id block a customer resolution', () => {
    expect(checkEntityResolution(resolution, { user_id: 'usr_9', customer_id: 'cust_123' }, { owner_id: 'usr_1' })).toEqual({
      ok: true,
      checked: ['params.customer_id'],
    });
    expect(checkEntityResolution({ entity_id: 'cust_123', entity_type: 'customer' }, { user_id: 'usr_9' })).toEqual({ ok: true, checked: [] });
  });

  it('walks nested objects and arrays with dotted paths', () => {
    const result = checkEntityResolution(
      resolution,
      { customer: { id: 'cust_777', name: 'Ann' }, lines: [{ product_id: 'prod_1' }, { billed_to_id: 'cust_123' }] },
      { customer: { profile: { customer_id: 'cust_888' } } },
    );
    expect(result.ok).toBe(false);
    expect(result.checked).toEqual(['params.customer.id', 'params.lines.1.billed_to_id', 'variables.customer.profile.customer_id']);
    expect(result.ok === false && result.mismatches).toEqual([
      { field: 'params.customer.id', expected: 'cust_123', actual: 'cust_777' },
      { field: 'variables.customer.profile.customer_id', expected: 'cust_123', actual: 'cust_888' },
    ]);
    expect(result.ok === false && result.reason).toBe('params.customer.id is "cust_777" but the resolved entity is "cust_123" (and 1 more)');
  });

  it('with a prefix, ignores id-like fields whose values have another prefix and non-id fields', () => {
    const result = checkEntityResolution(resolution, { id: 'ord_5', note: 'cust_999', parent: 'cust_999', customer_ids: ['cust_999'] });
    expect(result).toEqual({ ok: true, checked: [] });
  });

  it('with an entity type, checks <type>_id whatever its value, and <type>.id', () => {
    const typed = { entity_id: '12345', entity_type: 'customer' };
    expect(checkEntityResolution(typed, { customer_id: '12345' })).toEqual({ ok: true, checked: ['params.customer_id'] });
    expect(checkEntityResolution(typed, { customer_id: 12345 })).toEqual({ ok: true, checked: ['params.customer_id'] });
    const result = checkEntityResolution(typed, { customer_id: '999', customer: { id: '888' }, order_id: '777', id: '666' });
    expect(result.ok === false && result.mismatches.map((m) => m.field)).toEqual(['params.customer_id', 'params.customer.id']);
  });

  it('matches the type key case-insensitively', () => {
    const result = checkEntityResolution({ entity_id: 'cust_1', entity_type: 'Customer' }, { Customer_ID: 'cust_2' });
    expect(result.ok).toBe(false);
  });

  it('combines type and prefix rules', () => {
    const result = checkEntityResolution({ entity_id: 'cust_1', entity_type: 'customer' }, { payer_id: 'cust_2', customer_id: 'cust_1' });
    expect(result.ok === false && result.mismatches).toEqual([{ field: 'params.payer_id', expected: 'cust_1', actual: 'cust_2' }]);
    expect(result.checked).toEqual(['params.payer_id', 'params.customer_id']);
  });

  it('without a type or a prefix, compares only entity_id fields', () => {
    const bare = { entity_id: '12345' };
    expect(checkEntityResolution(bare, { id: '999', customer_id: '999', account_id: '1' })).toEqual({ ok: true, checked: [] });
    const result = checkEntityResolution(bare, { target: { entity_id: '999' } });
    expect(result).toMatchObject({ ok: false, mismatches: [{ field: 'params.target.entity_id', actual: '999' }] });
  });

  it('always checks entity_id fields', () => {
    expect(checkEntityResolution(resolution, { entity_id: 'acct_1' }).ok).toBe(false);
    expect(checkEntityResolution({ entity_id: 'cust_1', entity_type: 'customer' }, {}, { entity_id: 'cust_1' })).toEqual({
      ok: true,
      checked: ['variables.entity_id'],
    });
  });

  it('checks state too when given', () => {
    const result = checkEntityResolution(resolution, { customer_id: 'cust_123' }, {}, { customer: { id: 'cust_456' } });
    expect(result).toMatchObject({ ok: false, mismatches: [{ field: 'state.customer.id', actual: 'cust_456' }] });
  });

  it('skips null, boolean and object values under matching keys', () => {
    expect(checkEntityResolution({ entity_id: 'c1', entity_type: 'customer' }, { customer_id: null, entity_id: true })).toEqual({ ok: true, checked: [] });
  });

  it('handles missing params and variables', () => {
    expect(checkEntityResolution(resolution)).toEqual({ ok: true, checked: [] });
  });

  it('rejects an empty entity_id', () => {
    expect(() => checkEntityResolution({ entity_id: ' ' }, {})).toThrow(ValidationError);
  });
});
