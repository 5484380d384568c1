// The Socket Mode half of the Slack emulator: `apps.connections.open` hands out a single-use
// `ws://127.0.0.1:<port>/link/?ticket=…` URL on the emulator's own port, and this file speaks
// Slack's envelope protocol on it, as @slack/socket-mode expects it: `hello` on connect (with
// `num_connections`, `debug_info`, `connection_info`), envelopes carrying `envelope_id`, `payload`
// and `accepts_response_payload`, acks `{envelope_id, payload?}` back, server pings, and a
// `disconnect` message that asks the client to reconnect through a fresh URL.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

export type EnvelopeType = 'events_api' | 'interactive' | 'slash_commands';

export interface SocketAck {
  envelope_id: string;
  type: EnvelopeType;
  /** What the app passed to `ack()`: a view_submission's `response_action`, a command's reply. */
  payload?: Record<string, unknown>;
  /** Milliseconds from sending the envelope to its ack. */
  elapsed: number;
}

export interface SocketModeEmulator {
  /** Connections that are open and answered the ping sent after `hello` (so the client has read it). */
  readonly openConnections: number;
  /** How many connections were ever opened (reconnects count). */
  readonly connectionsOpened: number;
  readonly acks: readonly SocketAck[];
  /** Resolves once at least `count` connections are open (after their `hello`). */
  waitForConnection(options?: { count?: number; timeoutMs?: number }): Promise<void>;
  /** Sends one envelope to an open connection and waits for its ack (Slack gives up after 3 s). */
  deliver(type: EnvelopeType, payload: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<SocketAck>;
  /** A block_actions, view_submission, shortcut… payload, as an `interactive` envelope. */
  pushInteraction(payload: Record<string, unknown>): Promise<SocketAck>;
  /** A slash command's fields (as Slack would have form-posted them), as a `slash_commands` envelope. */
  pushSlashCommand(command: Record<string, string>): Promise<SocketAck>;
  /** An Events API event (`{type: 'app_home_opened', …}`), wrapped in its `event_callback`. */
  pushEvent(event: Record<string, unknown>): Promise<SocketAck>;
  /** Slack's "please reconnect": a `disconnect` message to every open connection. */
  disconnectAll(reason?: 'warning' | 'refresh_requested' | 'link_disabled'): void;
}

/** The parts the Web API half needs: mint URLs, take HTTP upgrades, shut down. */
export interface SocketModeServer extends SocketModeEmulator {
  /** The `url` an `apps.connections.open` answer carries. */
  connectionUrl(): string;
  /** Takes an HTTP upgrade on `/link/`; false when the request is not one. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  reset(): void;
  close(): void;
}

const HOST = 'applink-emulator-1';
const ACK_TIMEOUT_MS = 3000;
const PING_INTERVAL_MS = 10_000;

interface Pending {
  type: EnvelopeType;
  sentAt: number;
  resolve: (ack: SocketAck) => void;
}

export function createSocketModeServer(identity: { teamId: string; appId: string }, base: () => string): SocketModeServer {
  const wss = new WebSocketServer({ noServer: true });
  const tickets = new Set<string>();
  const open: WebSocket[] = [];
  const pending = new Map<string, Pending>();
  const acks: SocketAck[] = [];
  const connectionWaiters = new Set<() => void>();
  let connectionsOpened = 0;
  let nextConnection = 0;

  const notifyConnections = () => {
    for (const waiter of [...connectionWaiters]) waiter();
  };

  function onMessage(raw: unknown): void {
    let message: { envelope_id?: unknown; payload?: unknown };
    try {
      message = JSON.parse(String(raw)) as typeof message;
    } catch {
      return; // Slack ignores what it cannot read
    }
    const id = typeof message.envelope_id === 'string' ? message.envelope_id : undefined;
    const waiting = id === undefined ? undefined : pending.get(id);
    if (!id || !waiting) return;
    pending.delete(id);
    const payload = message.payload;
    const ack: SocketAck = {
      envelope_id: id,
      type: waiting.type,
      ...(payload && typeof payload === 'object' && Object.keys(payload).length > 0 ? { payload: payload as Record<string, unknown> } : {}),
      elapsed: Date.now() - waiting.sentAt,
    };
    acks.push(ack);
    waiting.resolve(ack);
  }

  function onConnection(ws: WebSocket): void {
    connectionsOpened += 1;
    ws.on('message', onMessage);
    // The server sees the upgrade before the client does: a connection counts as open once the
    // client answers the ping that follows `hello`, so it has read `hello` and can take envelopes.
    ws.once('pong', () => {
      open.push(ws);
      notifyConnections();
    });
    ws.on('close', () => {
      const at = open.indexOf(ws);
      if (at >= 0) open.splice(at, 1);
    });
    // Slack pings; the client, once pinged, expects the next ping within its server ping timeout.
    const pinger = setInterval(() => ws.ping(), PING_INTERVAL_MS);
    pinger.unref();
    ws.on('close', () => clearInterval(pinger));
    ws.send(
      JSON.stringify({
        type: 'hello',
        num_connections: open.length + 1,
        debug_info: { host: HOST, build_number: 1, approximate_connection_time: 18_060 },
        connection_info: { app_id: identity.appId },
      }),
    );
    ws.ping();
  }

  function liveConnection(): WebSocket | undefined {
    const live = open.filter((ws) => ws.readyState === ws.OPEN);
    if (live.length === 0) return undefined;
    nextConnection = (nextConnection + 1) % live.length;
    return live[nextConnection];
  }

  const server: SocketModeServer = {
    get openConnections() {
      return open.filter((ws) => ws.readyState === ws.OPEN).length;
    },
    get connectionsOpened() {
      return connectionsOpened;
    },
    acks,

    connectionUrl() {
      const ticket = randomUUID();
      tickets.add(ticket);
      return `${base().replace(/^http/, 'ws')}/link/?ticket=${ticket}&app_id=${identity.appId}`;
    },

    upgrade(req, socket, head) {
      const url = new URL(req.url ?? '/', 'http://emulator');
      if (url.pathname !== '/link/') return false;
      const ticket = url.searchParams.get('ticket') ?? '';
      // A ticket opens one connection, as Slack's do.
      if (!tickets.delete(ticket)) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        return true;
      }
      wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
      return true;
    },

    waitForConnection({ count = 1, timeoutMs = 5000 } = {}) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (server.openConnections < count) return;
          clearTimeout(timer);
          connectionWaiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          connectionWaiters.delete(check);
          reject(new Error(`no Socket Mode connection within ${timeoutMs} ms (${server.openConnections} open)`));
        }, timeoutMs);
        connectionWaiters.add(check);
        check();
      });
    },

    async deliver(type, payload, { timeoutMs = ACK_TIMEOUT_MS } = {}) {
      let ws = liveConnection();
      if (!ws) {
        await server.waitForConnection({ timeoutMs });
        ws = liveConnection();
      }
      if (!ws) throw new Error('no open Socket Mode connection');
      const envelopeId = randomUUID();
      const interactiveWithAnswer = type === 'interactive' && ['view_submission', 'block_suggestion'].includes(String(payload.type));
      const envelope = {
        envelope_id: envelopeId,
        type,
        payload,
        accepts_response_payload: type === 'slash_commands' || interactiveWithAnswer,
        ...(type === 'events_api' ? { retry_attempt: 0, retry_reason: '' } : {}),
      };
      return new Promise<SocketAck>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(envelopeId);
          reject(new Error(`envelope ${envelopeId} (${type}) was not acked within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(envelopeId, {
          type,
          sentAt: Date.now(),
          resolve: (ack) => {
            clearTimeout(timer);
            resolve(ack);
          },
        });
        ws.send(JSON.stringify(envelope));
      });
    },

    pushInteraction: (payload) => server.deliver('interactive', payload),
    pushSlashCommand: (command) => server.deliver('slash_commands', command),
    pushEvent: (event) =>
      server.deliver('events_api', {
        token: 'legacy',
        team_id: identity.teamId,
        api_app_id: identity.appId,
        type: 'event_callback',
        event_id: `Ev${randomUUID().replace(/-/g, '').slice(0, 10).toUpperCase()}`,
        event_time: Math.floor(Date.now() / 1000),
        event,
      }),

    disconnectAll(reason = 'refresh_requested') {
      for (const ws of open) ws.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: HOST } }));
    },

    reset() {
      acks.length = 0;
    },

    close() {
      for (const ws of [...open]) ws.terminate();
      wss.close();
    },
  };
  return server;
}
