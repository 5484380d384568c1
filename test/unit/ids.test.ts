import { describe, expect, it } from 'vitest';
import { newId } from '../../src/calls/fingerprint.ts';

describe('newId', () => {
  it('is the prefix and 24 hex digits, the first 12 the millisecond clock', () => {
    const id = newId('call', Date.UTC(2026, 10, 29, 12, 0, 0, 5));
    expect(id).toMatch(/^call_[0-9a-f]{24}$/);
    expect(parseInt(id.slice(5, 17), 16)).toBe(Date.UTC(2026, 10, 29, 12, 0, 0, 5));
  });

  it('sorts by creation, as text, across a carry into a higher hex digit', () => {
    const times = [0xfffffffff, 0x1000000000, 0x1000000001, Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 1) + 1, Date.UTC(2100, 0, 1)];
    const ids = times.map((t) => newId('apr', t));
    expect([...ids].sort()).toEqual(ids);
  });

  it('does not repeat within one millisecond', () => {
    const ids = new Set(Array.from({ length: 100_000 }, () => newId('call', 1_700_000_000_000)));
    expect(ids.size).toBe(100_000);
  });
});
