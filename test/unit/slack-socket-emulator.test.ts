import { LogLevel, SocketModeReceiver } from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startSlackEmulator, type SlackEmulator } from '../../demo/slack-emulator.ts';

const APP_TOKEN = 'xapp-1-test';

/**
 * The emulator's Socket Mode, spoken to by Slack's own client (@slack/socket-mode): the URL from
 * apps.connections.open, hello, envelopes and acks, and a reconnect on `disconnect`.
 */
describe('Slack emulator: Socket Mode', () => {
  let emulator: SlackEmulator;
  let client: SocketModeReceiver['client'] | undefined;

  beforeAll(async () => {
    emulator = await startSlackEmulator();
  });
  afterEach(async () => {
    await client?.disconnect();
    client = undefined;
  });
  afterAll(() => emulator.close());

  // A short ping timeout also shortens the client's wait before it reconnects.
  const connect = async () => {
    // Bolt's receiver wraps Slack's own Socket Mode client; the test talks to that client.
    client = new SocketModeReceiver({ appToken: APP_TOKEN, installerOptions: { clientOptions: { slackApiUrl: emulator.url } }, clientPingTimeout: 200, logLevel: LogLevel.ERROR })
      .client;
    await client.start();
    await emulator.socket.waitForConnection();
    return client;
  };

  it('opens a connection with the app token only, on a local ws:// URL that serves one connection', async () => {
    const answer = await new WebClient(APP_TOKEN, { slackApiUrl: emulator.url }).apps.connections.open();
    expect(answer.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/link\/\?ticket=/);
    await expect(new WebClient('xoxb-bot', { slackApiUrl: emulator.url, retryConfig: { retries: 0 } }).apps.connections.open()).rejects.toMatchObject({
      data: { error: 'not_allowed_token_type' },
    });
    await expect(new WebClient(APP_TOKEN, { slackApiUrl: emulator.url, retryConfig: { retries: 0 } }).chat.postMessage({ channel: 'C1', text: 'x' })).rejects.toMatchObject({
      data: { error: 'not_allowed_token_type' },
    });

    const first = await openRaw(answer.url!);
    expect(first.hello).toMatchObject({ type: 'hello', num_connections: 1, debug_info: { host: expect.any(String) }, connection_info: { app_id: 'A0INVOKE' } });
    first.ws.close();
    // The ticket is spent.
    await expect(openRaw(answer.url!)).rejects.toThrow(/401/);
  });

  it('delivers envelopes and returns the ack with its payload', async () => {
    const socketClient = await connect();
    const seen: string[] = [];
    socketClient.on('slash_commands', ({ ack, body }: { ack: (r?: unknown) => Promise<void>; body: { text: string } }) => {
      void ack({ text: `you said ${body.text}` });
    });
    socketClient.on('interactive', ({ ack }: { ack: () => Promise<void> }) => void ack());
    socketClient.on('app_home_opened', ({ ack, event }: { ack: () => Promise<void>; event: { user: string } }) => {
      seen.push(event.user);
      void ack();
    });

    const command = await emulator.socket.pushSlashCommand({ command: '/invoke', text: 'help', user_id: 'U1' });
    expect(command).toMatchObject({ type: 'slash_commands', payload: { text: 'you said help' } });
    const click = await emulator.socket.pushInteraction({ type: 'block_actions', actions: [] });
    expect(click.type).toBe('interactive');
    expect(click.payload).toBeUndefined();
    expect((await emulator.socket.pushEvent({ type: 'app_home_opened', user: 'U1', tab: 'home' })).type).toBe('events_api');
    expect(seen).toEqual(['U1']);
    expect(emulator.socket.acks.length).toBeGreaterThanOrEqual(3);
  });

  it('fails a delivery nobody acks within the timeout', async () => {
    await connect();
    await expect(emulator.socket.deliver('interactive', { type: 'block_actions' }, { timeoutMs: 200 })).rejects.toThrow(/not acked/);
  });

  it('asks the client to reconnect with `disconnect`; it comes back through a fresh URL', async () => {
    await connect();
    const opened = emulator.socket.connectionsOpened;
    const urls = emulator.callsTo('apps.connections.open').length;
    emulator.socket.disconnectAll('refresh_requested');
    await waitUntil(() => emulator.socket.connectionsOpened > opened && emulator.socket.openConnections === 1);
    expect(emulator.callsTo('apps.connections.open').length).toBe(urls + 1);
  });
});

/** A bare WebSocket to `url`: resolves with the first message (hello). */
function openRaw(url: string): Promise<{ ws: WebSocket; hello: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('message', (data) => resolve({ ws, hello: JSON.parse(String(data)) as unknown }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

async function waitUntil(probe: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
