import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Manifest {
  features: {
    app_home?: { home_tab_enabled?: boolean };
    slash_commands?: Array<{ command: string; url?: string; usage_hint?: string; description?: string }>;
  };
  oauth_config: { scopes: { bot: string[] } };
  settings: {
    event_subscriptions?: { request_url?: string; bot_events?: string[] };
    interactivity?: { is_enabled?: boolean; request_url?: string };
    socket_mode_enabled?: boolean;
  };
}

const read = (file: string) => parse(readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')) as Manifest;

/** What the app asks of Slack, whatever the transport: scopes, commands (without their URL), events. */
function capabilities(manifest: Manifest) {
  return {
    scopes: [...manifest.oauth_config.scopes.bot].sort(),
    commands: (manifest.features.slash_commands ?? []).map(({ url: _url, ...command }) => command),
    events: [...(manifest.settings.event_subscriptions?.bot_events ?? [])].sort(),
    homeTab: manifest.features.app_home?.home_tab_enabled ?? false,
    interactivity: manifest.settings.interactivity?.is_enabled ?? false,
  };
}

describe('Slack app manifests', () => {
  const http = read('manifest.yml');
  const socket = read('manifest.socket-mode.yml');

  it('ask for the same scopes, commands and events over HTTP and in Socket Mode', () => {
    expect(capabilities(socket)).toEqual(capabilities(http));
    expect(capabilities(http).commands.map((c) => c.command)).toEqual(['/invoke']);
    // App Home: the tab is on and its event subscribed.
    expect(capabilities(http)).toMatchObject({ homeTab: true, interactivity: true });
    expect(capabilities(http).events).toContain('app_home_opened');
  });

  it('point HTTP at /slack/events, and leave URLs out of Socket Mode', () => {
    expect(http.settings.socket_mode_enabled).toBe(false);
    const httpUrls = [http.settings.interactivity?.request_url, http.settings.event_subscriptions?.request_url, ...(http.features.slash_commands ?? []).map((c) => c.url)];
    expect(httpUrls.every((url) => url === 'https://YOUR-HOST/slack/events')).toBe(true);

    expect(socket.settings.socket_mode_enabled).toBe(true);
    const socketUrls = [socket.settings.interactivity?.request_url, socket.settings.event_subscriptions?.request_url, ...(socket.features.slash_commands ?? []).map((c) => c.url)];
    expect(socketUrls.filter((url) => url !== undefined)).toEqual([]);
  });
});
