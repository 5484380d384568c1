import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSlackEmulator, type SlackEmulator } from '../../demo/slack-emulator.ts';
import { buildApp, type BuiltApp } from '../../src/app.ts';
import { openStore, type Store } from '../../src/db/store.ts';
import { send, testConfig } from '../helpers/app.ts';
import { APP_TOKEN } from '../helpers/slack-transport.ts';

const CHANNEL = 'C0APPROVALS';

function socketModeConfig(slack: SlackEmulator) {
  return testConfig({
    SLACK_BOT_TOKEN: 'xoxb-test',
    SLACK_APP_TOKEN: APP_TOKEN,
    SLACK_APPROVAL_CHANNEL: CHANNEL,
    SLACK_APPROVER_IDS: 'UALICE',
    SLACK_API_URL: slack.url,
    INVOKE_OUTBOX_INTERVAL_MS: '0',
  });
}

/**
 * Socket Mode's connection itself (the flows over it run in slack.test.ts): where it connects,
 * with which token, how it survives a failed first attempt, and that closing the app closes it.
 */
describe('Slack Socket Mode connection', () => {
  let slack: SlackEmulator;
  /** One store for the apps below: migrating it once keeps the file quick. */
  let store: Store;
  beforeAll(async () => {
    slack = await startSlackEmulator();
    store = await openStore({ dataDir: 'memory://' });
  });
  afterAll(async () => {
    await slack.close();
    await store.close();
  });

  it('opens its connection through SLACK_API_URL with the app token, serves no HTTP route, and closes with the app', async () => {
    const built: BuiltApp = await buildApp(socketModeConfig(slack), { store, logger: false });
    try {
      await slack.socket.waitForConnection();
      const opened = slack.callsTo('apps.connections.open');
      expect(opened.map((c) => c.token)).toEqual([APP_TOKEN]);
      expect((await send(built.app, 'POST', '/slack/events', {})).status).toBe(404);
    } finally {
      await built.app.close();
    }
    expect(slack.socket.openConnections).toBe(0);
  });

  it('retries apps.connections.open when the first attempt is cut off, instead of never connecting, and logs why', async () => {
    slack.reset();
    slack.failNext('apps.connections.open', { drop: true });
    const logs: Array<{ level: number; component?: string; msg?: string }> = [];
    const built = await buildApp(socketModeConfig(slack), { store, logger: { level: 'warn', stream: { write: (line: string) => void logs.push(JSON.parse(line)) } } });
    try {
      await slack.socket.waitForConnection({ timeoutMs: 8000 });
      const attempts = slack.callsTo('apps.connections.open');
      expect(attempts.length).toBe(2);
      expect(attempts[0]!.fault).toEqual({ drop: true });
      // In the app's log (JSON, redacted), not on the console.
      expect(logs.find((line) => line.component === 'slack-socket-mode' && line.level === 40)?.msg).toMatch(/request failed/);
    } finally {
      await built.app.close();
    }
  });

  // About 5 s: the client waits its ping timeout before reconnecting. Slack sends `disconnect`
  // whenever it recycles a connection, so this is the path every long-running app takes.
  it("reconnects after Slack's disconnect message and keeps answering", async () => {
    const built = await buildApp(socketModeConfig(slack), { store, logger: false });
    try {
      await slack.socket.waitForConnection();
      const opened = slack.socket.connectionsOpened;
      slack.socket.disconnectAll('refresh_requested');
      await until(() => slack.socket.connectionsOpened > opened && slack.socket.openConnections === 1, 10_000);
      expect(slack.socket.connectionsOpened).toBe(opened + 1);
      const ack = await slack.socket.pushSlashCommand({
        command: '/invoke',
        text: 'help',
        user_id: 'UALICE',
        channel_id: CHANNEL,
        team_id: 'T1',
        response_url: slack.responseUrl('after-reconnect'),
        trigger_id: 't',
      });
      expect(ack.type).toBe('slash_commands');
      await until(() => slack.responses.some((r) => r.id === 'after-reconnect'));
    } finally {
      await built.app.close();
    }
  });
});

async function until(probe: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
