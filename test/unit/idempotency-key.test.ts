import { describe, expect, it } from 'vitest';
import { resolveIdempotencyKey } from '../../src/calls/call-request.ts';

// Pins the control-character boundary (C0 and DEL refused, everything else kept) now that it is
// checked by code rather than by a regular expression.
describe('resolveIdempotencyKey control characters', () => {
  it.each(['\u0000', '\u0009', '\u001f', '\u007f'])('refuses a key holding U+%s', (char) => {
    expect(() => resolveIdempotencyKey(`key${char}1`, undefined)).toThrow('The idempotency key contains control characters');
  });

  it.each([' ', '~', '\u0080', 'é', '🔑'])('keeps a key holding %s', (char) => {
    expect(resolveIdempotencyKey(`key${char}1`, undefined)).toBe(`key${char}1`);
  });
});
