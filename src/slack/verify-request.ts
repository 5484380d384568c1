import { createHmac, timingSafeEqual } from 'node:crypto';

/** Slack's window for request timestamps, both ways: older is a replay, newer is forged. */
export const MAX_SKEW_SECONDS = 300;

export type VerifyResult = { ok: true } | { ok: false; reason: string };

/**
 * Slack's request signing (v0): HMAC-SHA256 over `v0:{timestamp}:{raw body}` with the signing
 * secret, compared in constant time. Timestamps more than five minutes old or in the future are
 * refused (Bolt's own check lets future ones through).
 */
export function verifySlackRequest(input: {
  signingSecret: string;
  rawBody: string;
  timestamp: string | undefined;
  signature: string | undefined;
  nowSeconds: number;
}): VerifyResult {
  const { signingSecret, rawBody, timestamp, signature, nowSeconds } = input;
  if (!timestamp || !signature) return { ok: false, reason: 'missing X-Slack-Request-Timestamp or X-Slack-Signature' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'malformed timestamp' };
  const skew = nowSeconds - Number(timestamp);
  if (skew > MAX_SKEW_SECONDS) return { ok: false, reason: 'stale timestamp' };
  if (skew < -MAX_SKEW_SECONDS) return { ok: false, reason: 'timestamp in the future' };
  const expected = Buffer.from(`v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`, 'utf8');
  const given = Buffer.from(signature, 'utf8');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature mismatch' };
  return { ok: true };
}

/** What a Slack client does: used by tests and the demo to send signed requests. */
export function signSlackRequest(signingSecret: string, rawBody: string, timestamp: number): { 'x-slack-request-timestamp': string; 'x-slack-signature': string } {
  const signature = `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
  return { 'x-slack-request-timestamp': String(timestamp), 'x-slack-signature': signature };
}
