import { randomBytes } from 'node:crypto';
import type { FastifyReply } from 'fastify';

/**
 * Server-rendered HTML: one escape function for every value that is not our own markup, one
 * layout, and the headers every page is sent with. No script anywhere.
 */

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text and attribute values (always double-quoted in our markup). */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]!);
}

/**
 * Markup made by `html` (user text in it already escaped). A class, so that user data shaped
 * like `{html: "<script>"}` (params are arbitrary JSON) is never taken for markup.
 */
export class Html {
  constructor(readonly html: string) {}
}

/** Tagged template: interpolated values are escaped unless they are `Html` (or arrays of it). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    out += piece(value) + strings[i + 1]!;
  });
  return new Html(out);
}

function piece(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(piece).join('');
  if (value instanceof Html) return value.html;
  return escapeHtml(value);
}

/** JSON for display; never throws (BigInt, cycles). */
export function prettyJson(value: unknown): string {
  if (value === undefined) return '(none)';
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

const STYLE = `
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d1f23}
main{max-width:880px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:16px;margin:20px 0 8px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:#5b6270}dd{margin:0}
pre{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:10px;overflow:auto;max-height:360px;white-space:pre-wrap;word-break:break-word}
.card{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:16px;margin:12px 0}
.status{display:inline-block;padding:2px 8px;border-radius:10px;background:#e8ebf0;font-weight:600}
.notice{border-left:4px solid #c77700;background:#fff7e6;padding:8px 12px;margin:12px 0}
.error{border-left:4px solid #c62828;background:#fdecea;padding:8px 12px;margin:12px 0}
form{margin:8px 0}textarea,input[type=password],input[type=text]{width:100%;box-sizing:border-box;font:inherit;padding:6px;border:1px solid #b9bfca;border-radius:4px}
textarea{min-height:70px}.params{min-height:180px;font-family:ui-monospace,monospace}
button{font:inherit;padding:6px 14px;border-radius:4px;border:1px solid #7a8291;background:#fff;cursor:pointer;margin-top:6px}
button.approve{background:#1b7f3b;border-color:#1b7f3b;color:#fff}button.reject{background:#b3261e;border-color:#b3261e;color:#fff}
table{width:100%;border-collapse:collapse;background:#fff}td,th{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e6eb;vertical-align:top}
.muted{color:#5b6270;font-size:13px}`;

/** A whole page: the style carries the response's CSP nonce, so no other inline style applies. */
export function page(title: string, body: Html, nonce: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>${escapeHtml(title)} · Invoke</title>
<style nonce="${escapeHtml(nonce)}">${STYLE}</style></head>
<body><main>${body.html}</main></body></html>`;
}

/**
 * Headers for every web answer: never cached (a page shows a link's token and a CSRF token),
 * never framed, no referrer (the token is in the URL), no script at all.
 */
export function securityHeaders(reply: FastifyReply, nonce: string | null): void {
  void reply.header(
    'content-security-policy',
    `default-src 'self'; script-src 'none'; style-src ${nonce ? `'nonce-${nonce}'` : "'none'"}; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'`,
  );
  void reply.header('x-frame-options', 'DENY');
  void reply.header('cache-control', 'no-store');
  void reply.header('x-content-type-options', 'nosniff');
  void reply.header('referrer-policy', 'no-referrer');
}

/** Sends one page with its status and the security headers. */
export function sendPage(reply: FastifyReply, status: number, title: string, body: Html): FastifyReply {
  const nonce = randomBytes(16).toString('base64');
  securityHeaders(reply, nonce);
  return reply
    .status(status)
    .type('text/html; charset=utf-8')
    .send(page(title, body, nonce));
}
