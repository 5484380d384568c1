// A local stand-in for Slack's Web API, for tests and the demo (Slack cannot be reached from
// here). It answers the methods Invoke uses, keeps a minimal picture of the channels, records
// every call, and can fail on demand so retries can be exercised. Point `@slack/web-api`
// (or Bolt's `clientOptions`) at it with `slackApiUrl: emulator.url`. Socket Mode (an `xapp-`
// token) connects through `apps.connections.open` to the emulator's own port: see
// slack-socket-mode.ts, reached as `emulator.socket`.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSocketModeServer, type SocketModeEmulator } from './slack-socket-mode.ts';

export interface RecordedCall {
  method: string;
  /** Form values stay strings, as Slack receives them; JSON-encoded fields are decoded. */
  args: Record<string, unknown>;
  token: string | undefined;
  /** Epoch milliseconds. */
  at: number;
  /** Set when this call was answered by an injected fault. */
  fault?: SlackFault;
}

export interface EmulatedMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown;
  attachments?: unknown;
  user: string;
  bot_id: string;
  /** How many times `chat.update` replaced it. */
  updates: number;
}

export interface EphemeralMessage {
  channel: string;
  user: string;
  message_ts: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown;
}

export interface OpenedView {
  id: string;
  trigger_id: string;
  view: Record<string, unknown>;
  /** How many times `views.update` replaced it. */
  updates: number;
  /** The hash `views.update` may name to refuse a stale update. */
  hash: string;
}

/** A Home tab published with `views.publish`. */
export interface PublishedHome {
  id: string;
  user_id: string;
  view: Record<string, unknown>;
  at: number;
}

export interface RecordedResponse {
  id: string;
  body: unknown;
  at: number;
}

/** `drop`: the connection is cut before any answer (a network failure, not an HTTP error). */
export type SlackFault = { status: 429; retryAfter: number } | { status: 500 | 502 | 503 | 504 } | { error: string } | { drop: true };

export interface SlackEmulatorOptions {
  port?: number;
  /** Members of user groups, for `usergroups.users.list`. */
  userGroups?: Record<string, string[]>;
}

export interface SlackEmulator {
  /** Base for `slackApiUrl`, ending in `/api/`. */
  readonly url: string;
  readonly identity: { teamId: string; userId: string; botId: string; appId: string };
  readonly calls: readonly RecordedCall[];
  readonly messages: readonly EmulatedMessage[];
  readonly ephemerals: readonly EphemeralMessage[];
  readonly views: readonly OpenedView[];
  /** Every `views.publish`, in order; `homeOf` gives a user's current Home tab. */
  readonly homes: readonly PublishedHome[];
  readonly responses: readonly RecordedResponse[];
  callsTo(method: string): RecordedCall[];
  /** The Home tab last published for `userId`, if any. */
  homeOf(userId: string): PublishedHome | undefined;
  /** Socket Mode: envelopes to the app and its acks. */
  readonly socket: SocketModeEmulator;
  /** Sets (or, with undefined, removes) a user group's members, as an admin would in Slack. */
  setUserGroup(id: string, members: string[] | undefined): void;
  /** The DM channel `conversations.open` gives for a user. */
  dmChannelOf(user: string): string;
  /** Answer the next `times` calls to `method` with this fault instead of running it. */
  failNext(method: string, fault: SlackFault, times?: number): void;
  /** An absolute `response_url` on the emulator; POSTs to it land in `responses`. */
  responseUrl(id: string): string;
  /** The first POST to `responseUrl(id)`, as soon as it lands (or already landed); rejects after `timeoutMs`. */
  responseTo(id: string, timeoutMs?: number): Promise<RecordedResponse>;
  /** Forget calls, messages, views, responses and pending faults (timestamps stay monotonic). */
  reset(): void;
  close(): Promise<void>;
}

type Args = Record<string, unknown>;
type Answer = { ok: true; [key: string]: unknown } | { ok: false; error: string };

const IDENTITY = { teamId: 'T0INVOKE', userId: 'U0INVOKEBOT', botId: 'B0INVOKEBOT', appId: 'A0INVOKE' } as const;
const WORKSPACE_URL = 'https://invoke-emulator.slack.com/';
// Fields the Web API client sends JSON-encoded inside a form body.
const JSON_FIELDS = ['blocks', 'attachments', 'view', 'metadata'];
const MAX_BLOCKS = 50;
const MAX_VIEW_BLOCKS = 100;
/** The one method an app-level token may call; every other method wants a bot token. */
const APP_TOKEN_METHODS = new Set(['apps.connections.open']);

const fail = (error: string): Answer => ({ ok: false, error });
const text = (args: Args, key: string): string | undefined => {
  const value = args[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
};

export async function startSlackEmulator(options: SlackEmulatorOptions = {}): Promise<SlackEmulator> {
  const calls: RecordedCall[] = [];
  const messages: EmulatedMessage[] = [];
  const ephemerals: EphemeralMessage[] = [];
  const views: OpenedView[] = [];
  const homes: PublishedHome[] = [];
  const responses: RecordedResponse[] = [];
  const responseWaiters = new Map<string, (response: RecordedResponse) => void>();
  const usedTriggers = new Set<string>();
  const faults = new Map<string, SlackFault[]>();
  const userGroups: Record<string, string[]> = { ...options.userGroups };
  // A DM channel id per user, stable as in Slack.
  const dmChannelOf = (user: string) => `D${user.replace(/[^A-Z0-9]/gi, '').toUpperCase()}`;
  /** `http://127.0.0.1:<port>`, known once the server listens. */
  let base = '';
  const socket = createSocketModeServer(IDENTITY, () => base);

  let sequence = 0;
  // Slack timestamps: seconds and six digits, unique and increasing.
  const nextTs = () => {
    sequence += 1;
    const seconds = 1_700_000_000 + Math.floor(sequence / 10_000);
    return `${seconds}.${String((sequence % 10_000) * 100).padStart(6, '0')}`;
  };
  const findMessage = (args: Args) => messages.find((m) => m.channel === text(args, 'channel') && m.ts === text(args, 'ts'));
  const messageContentError = (args: Args) => {
    if (args.blocks !== undefined && !Array.isArray(args.blocks)) return 'invalid_blocks_format';
    if (Array.isArray(args.blocks) && args.blocks.length > MAX_BLOCKS) return 'invalid_blocks';
    return undefined;
  };

  const methods: Record<string, (args: Args) => Answer> = {
    'auth.test': () => ({
      ok: true,
      url: WORKSPACE_URL,
      team: 'Invoke Emulator',
      user: 'invoke',
      team_id: IDENTITY.teamId,
      user_id: IDENTITY.userId,
      bot_id: IDENTITY.botId,
      is_enterprise_install: false,
    }),

    'chat.postMessage': (args) => {
      const channel = text(args, 'channel');
      if (!channel) return fail('channel_not_found');
      if (!text(args, 'text') && args.blocks === undefined && args.attachments === undefined) {
        return fail('no_text');
      }
      const contentError = messageContentError(args);
      if (contentError) return fail(contentError);
      const message: EmulatedMessage = {
        channel,
        ts: nextTs(),
        ...(text(args, 'thread_ts') ? { thread_ts: text(args, 'thread_ts') } : {}),
        ...(args.text !== undefined ? { text: String(args.text) } : {}),
        ...(args.blocks !== undefined ? { blocks: args.blocks } : {}),
        ...(args.attachments !== undefined ? { attachments: args.attachments } : {}),
        user: IDENTITY.userId,
        bot_id: IDENTITY.botId,
        updates: 0,
      };
      messages.push(message);
      return { ok: true, channel, ts: message.ts, message: shownMessage(message) };
    },

    'chat.update': (args) => {
      const message = findMessage(args);
      if (!message) return fail('message_not_found');
      const contentError = messageContentError(args);
      if (contentError) return fail(contentError);
      // As in Slack, omitted fields keep their previous value; `blocks: []` removes blocks.
      if (args.text !== undefined) message.text = String(args.text);
      if (args.blocks !== undefined) message.blocks = args.blocks;
      if (args.attachments !== undefined) message.attachments = args.attachments;
      message.updates += 1;
      return {
        ok: true,
        channel: message.channel,
        ts: message.ts,
        text: message.text ?? '',
        message: shownMessage(message),
      };
    },

    'chat.postEphemeral': (args) => {
      const channel = text(args, 'channel');
      const user = text(args, 'user');
      if (!channel) return fail('channel_not_found');
      if (!user) return fail('user_not_found');
      if (!text(args, 'text') && args.blocks === undefined) return fail('no_text');
      const ephemeral: EphemeralMessage = {
        channel,
        user,
        message_ts: nextTs(),
        ...(text(args, 'thread_ts') ? { thread_ts: text(args, 'thread_ts') } : {}),
        ...(args.text !== undefined ? { text: String(args.text) } : {}),
        ...(args.blocks !== undefined ? { blocks: args.blocks } : {}),
      };
      ephemerals.push(ephemeral);
      return { ok: true, message_ts: ephemeral.message_ts };
    },

    'chat.getPermalink': (args) => {
      // Slack names the message `message_ts` here.
      const message = findMessage({ channel: args.channel, ts: args.message_ts ?? args.ts });
      if (!message) return fail('message_not_found');
      const permalink = `${WORKSPACE_URL}archives/${message.channel}/p${message.ts.replace('.', '')}`;
      return { ok: true, channel: message.channel, permalink };
    },

    'views.open': (args) => {
      const triggerId = text(args, 'trigger_id');
      const view = args.view;
      if (!triggerId || typeof view !== 'object' || view === null) return fail('invalid_arguments');
      // A trigger opens one view, as in Slack.
      if (usedTriggers.has(triggerId)) return fail('exchanged_trigger_id');
      usedTriggers.add(triggerId);
      const opened: OpenedView = {
        id: `V${String(views.length + 1).padStart(8, '0')}`,
        trigger_id: triggerId,
        view: view as Record<string, unknown>,
        updates: 0,
        hash: 'h0',
      };
      views.push(opened);
      return { ok: true, view: { id: opened.id, team_id: IDENTITY.teamId, hash: opened.hash, ...opened.view } };
    },

    'views.update': (args) => {
      const view = args.view;
      if (typeof view !== 'object' || view === null) return fail('invalid_arguments');
      const viewId = text(args, 'view_id');
      const externalId = text(args, 'external_id');
      const opened = views.find((v) => (viewId !== undefined && v.id === viewId) || (externalId !== undefined && v.view['external_id'] === externalId));
      if (!opened) return fail('not_found');
      // As in Slack, an update replaces the whole view; `hash` guards against a stale one.
      const hash = text(args, 'hash');
      if (hash !== undefined && hash !== opened.hash) return fail('hash_conflict');
      opened.view = view as Record<string, unknown>;
      opened.updates += 1;
      opened.hash = `h${opened.updates}`;
      return { ok: true, view: { id: opened.id, team_id: IDENTITY.teamId, hash: opened.hash, ...opened.view } };
    },

    'views.publish': (args) => {
      const user = text(args, 'user_id');
      const view = args.view as { type?: unknown; blocks?: unknown } | undefined;
      if (!user) return fail('invalid_arguments');
      if (typeof view !== 'object' || view === null || view.type !== 'home') return fail('invalid_arguments');
      if (!Array.isArray(view.blocks)) return fail('invalid_blocks_format');
      if (view.blocks.length > MAX_VIEW_BLOCKS) return fail('invalid_blocks');
      const published: PublishedHome = {
        id: homes.find((h) => h.user_id === user)?.id ?? `VH${String(homes.length + 1).padStart(7, '0')}`,
        user_id: user,
        view,
        at: Date.now(),
      };
      homes.push(published);
      return { ok: true, view: { id: published.id, team_id: IDENTITY.teamId, ...published.view } };
    },

    'apps.connections.open': () => ({ ok: true, url: socket.connectionUrl() }),

    'conversations.info': (args) => {
      const channel = text(args, 'channel');
      if (!channel) return fail('channel_not_found');
      return {
        ok: true,
        channel: { id: channel, name: channel.toLowerCase(), is_channel: true, is_private: false, is_member: true },
      };
    },

    'users.info': (args) => {
      const user = text(args, 'user');
      if (!user) return fail('user_not_found');
      const name = user.toLowerCase();
      return {
        ok: true,
        user: {
          id: user,
          team_id: IDENTITY.teamId,
          name,
          real_name: name,
          is_bot: false,
          tz: 'UTC',
          profile: { display_name: name, real_name: name },
        },
      };
    },

    'conversations.open': (args) => {
      const users = text(args, 'users')?.split(',') ?? [];
      if (users.length !== 1) return fail(users.length === 0 ? 'users_list_not_supplied' : 'not_supported');
      return { ok: true, channel: { id: dmChannelOf(users[0]!), is_im: true, user: users[0] } };
    },

    'usergroups.users.list': (args) => {
      const members = userGroups[text(args, 'usergroup') ?? ''];
      return members ? { ok: true, users: members } : fail('no_such_subteam');
    },
  };

  const server = createServer((req, res) => {
    readBody(req)
      .then((raw) => route(req, res, raw))
      .catch(() => answer(res, 400, fail('invalid_request')));
  });
  server.on('upgrade', (req, stream, head) => {
    if (!socket.upgrade(req, stream, head)) stream.destroy();
  });

  const route = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const path = new URL(req.url ?? '/', 'http://emulator').pathname;
    const apiMethod = /^\/api\/([\w.]+)$/.exec(path)?.[1];
    const responseId = /^\/response\/([^/]+)$/.exec(path)?.[1];
    let args: Args;
    try {
      args = parseArgs(req, raw);
    } catch {
      return answer(res, 200, fail('invalid_json'));
    }

    if (responseId !== undefined && req.method === 'POST') {
      const response: RecordedResponse = { id: decodeURIComponent(responseId), body: args, at: Date.now() };
      responses.push(response);
      answer(res, 200, { ok: true });
      responseWaiters.get(response.id)?.(response);
      return;
    }
    if (apiMethod === undefined) return answer(res, 404, fail('not_found'));

    const call: RecordedCall = { method: apiMethod, args, token: tokenOf(req, args), at: Date.now() };
    calls.push(call);
    const fault = faults.get(apiMethod)?.shift();
    if (fault) {
      call.fault = fault;
      if ('drop' in fault) return res.destroy();
      if ('error' in fault) return answer(res, 200, fail(fault.error));
      if (fault.status === 429) {
        return answer(res, 429, fail('ratelimited'), { 'Retry-After': String(fault.retryAfter) });
      }
      return answer(res, fault.status, fail('internal_error'));
    }
    const handler = methods[apiMethod];
    if (!handler) return answer(res, 200, fail('unknown_method'));
    if (!call.token) return answer(res, 200, fail('not_authed'));
    // As in Slack: an app-level token opens connections and nothing else, a bot token cannot open one.
    if (call.token.startsWith('xapp-') !== APP_TOKEN_METHODS.has(apiMethod)) return answer(res, 200, fail('not_allowed_token_type'));
    return answer(res, 200, handler(args));
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${base}/api/`,
    identity: IDENTITY,
    calls,
    messages,
    ephemerals,
    views,
    homes,
    responses,
    socket,
    callsTo: (method) => calls.filter((call) => call.method === method),
    homeOf: (userId) => homes.filter((h) => h.user_id === userId).at(-1),
    setUserGroup: (id, members) => {
      if (members === undefined) delete userGroups[id];
      else userGroups[id] = [...members];
    },
    dmChannelOf,
    failNext: (method, fault, times = 1) => {
      faults.set(method, [...(faults.get(method) ?? []), ...Array.from({ length: times }, () => fault)]);
    },
    responseUrl: (id) => `${base}/response/${encodeURIComponent(id)}`,
    responseTo: (id, timeoutMs = 10_000) => {
      const landed = responses.find((response) => response.id === id);
      if (landed) return Promise.resolve(landed);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          responseWaiters.delete(id);
          reject(new Error(`no POST to the response_url ${id} within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        responseWaiters.set(id, (response) => {
          clearTimeout(timer);
          responseWaiters.delete(id);
          resolve(response);
        });
      });
    },
    reset: () => {
      for (const list of [calls, messages, ephemerals, views, homes, responses]) list.length = 0;
      socket.reset();
      usedTriggers.clear();
      faults.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        socket.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Slack accepts form bodies (what the Web API client sends, with objects JSON-encoded),
// JSON bodies (what `respond()` sends) and query parameters.
function parseArgs(req: IncomingMessage, raw: string): Args {
  const args: Args = Object.fromEntries(new URL(req.url ?? '/', 'http://emulator').searchParams);
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('application/json')) {
    const body: unknown = raw.trim() === '' ? {} : JSON.parse(raw);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    Object.assign(args, body);
  } else {
    Object.assign(args, Object.fromEntries(new URLSearchParams(raw)));
  }
  for (const field of JSON_FIELDS) {
    const value = args[field];
    if (typeof value === 'string') args[field] = JSON.parse(value) as unknown;
  }
  return args;
}

// A message as Slack shows it in answers: without the channel, which sits beside it.
function shownMessage({ channel: _channel, updates: _updates, ...message }: EmulatedMessage) {
  return { type: 'message', ...message };
}

function tokenOf(req: IncomingMessage, args: Args): string | undefined {
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  return bearer ?? (typeof args.token === 'string' ? args.token : undefined);
}

function answer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}
