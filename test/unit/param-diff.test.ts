import { describe, expect, it } from 'vitest';
import { diffParams } from '../../src/calls/param-edit.ts';

describe('diffParams', () => {
  it('is empty for equal params, whatever the key order', () => {
    expect(diffParams({ a: 1, b: { c: [1, 2], d: 'x' } }, { b: { d: 'x', c: [1, 2] }, a: 1 })).toEqual([]);
  });

  it('lists added, removed and changed fields with old and new values, sorted by path', () => {
    expect(diffParams({ amount: 50, note: 'hi', currency: 'EUR' }, { amount: 40, currency: 'EUR', memo: 'refund' })).toEqual([
      { path: 'amount', change: 'changed', old: 50, new: 40 },
      { path: 'memo', change: 'added', new: 'refund' },
      { path: 'note', change: 'removed', old: 'hi' },
    ]);
  });

  it('walks nested objects into dotted paths', () => {
    expect(diffParams({ customer: { id: 'c1', address: { city: 'Paris', zip: '75001' } } }, { customer: { id: 'c1', address: { city: 'Lyon' } } })).toEqual([
      { path: 'customer.address.city', change: 'changed', old: 'Paris', new: 'Lyon' },
      { path: 'customer.address.zip', change: 'removed', old: '75001' },
    ]);
  });

  it('compares arrays whole, and a change of type as a change', () => {
    expect(diffParams({ tags: ['a', 'b'], flag: { on: true } }, { tags: ['b', 'a'], flag: true })).toEqual([
      { path: 'flag', change: 'changed', old: { on: true }, new: true },
      { path: 'tags', change: 'changed', old: ['a', 'b'], new: ['b', 'a'] },
    ]);
  });

  it('tells null from a missing field', () => {
    expect(diffParams({ a: null }, {})).toEqual([{ path: 'a', change: 'removed', old: null }]);
    expect(diffParams({}, { a: null })).toEqual([{ path: 'a', change: 'added', new: null }]);
  });
});
