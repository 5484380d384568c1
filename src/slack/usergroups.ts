import type { WebClient } from '@slack/web-api';
import type { GroupDirectory } from '../approvals/routing.ts';

interface Known {
  members: ReadonlySet<string>;
  /** When they were read from Slack (the clock's milliseconds). */
  at: number;
}

/**
 * Slack user groups (S…) resolved through `usergroups.users.list`, kept for `ttlMs` and read
 * again after. One lookup per group at a time, shared by everyone asking meanwhile. When Slack
 * fails, the last members read stand (a brief outage does not lock approvers out); a group never
 * read is unknown (null), and an unknown group admits nobody.
 */
export function createUserGroups(client: WebClient, options: { ttlMs: number; clock?: () => number; warn?: (obj: unknown, msg: string) => void }): GroupDirectory {
  const clock = options.clock ?? Date.now;
  const known = new Map<string, Known>();
  const reading = new Map<string, Promise<ReadonlySet<string> | null>>();

  async function read(groupId: string): Promise<ReadonlySet<string> | null> {
    // Trusted for the TTL from when Slack was asked, not from when it answered: a change made
    // while the read was under way is never masked for longer than the TTL.
    const askedAt = clock();
    try {
      const listed = await client.usergroups.users.list({ usergroup: groupId });
      const members = new Set(listed.users ?? []);
      known.set(groupId, { members, at: askedAt });
      return members;
    } catch (error) {
      options.warn?.({ err: error, usergroup: groupId }, 'could not read a Slack user group; using its last known members');
      return known.get(groupId)?.members ?? null;
    }
  }

  return {
    async membersOf(groupId) {
      const cached = known.get(groupId);
      if (cached && clock() - cached.at < options.ttlMs) return cached.members;
      let pending = reading.get(groupId);
      if (!pending) {
        pending = read(groupId).finally(() => reading.delete(groupId));
        reading.set(groupId, pending);
      }
      return pending;
    },
  };
}
