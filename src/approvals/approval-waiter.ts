import type { Store } from '../db/store.ts';

/** The channel decisions are announced on (`pg_notify`, in the deciding transaction) and waiters listen to. */
export const DECISIONS_CHANNEL = 'invoke_approvals';
const POLL_MS = 1000;

/**
 * Long-polling agents wait here. A decision runs `pg_notify('invoke_approvals', id)` in its
 * transaction; every replica LISTENs and wakes its waiters. A slow poll backs it up, so a lost
 * notification (a reconnect) costs at most a second.
 */
export function createApprovalWaiter(store: Store) {
  const waiters = new Map<string, Set<() => void>>();
  let unlisten: (() => Promise<void>) | null = null;

  function wake(id: string): void {
    for (const resolve of waiters.get(id) ?? []) resolve();
    waiters.delete(id);
  }

  return {
    async start(): Promise<void> {
      unlisten = await store.listen(DECISIONS_CHANNEL, wake);
    },

    /** Waits until `isDecided()` holds or `ms` pass. */
    async waitUntil(id: string, ms: number, isDecided: () => Promise<boolean>): Promise<void> {
      const deadline = Date.now() + ms;
      while (!(await isDecided())) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(POLL_MS, remaining));
          function done() {
            clearTimeout(timer);
            waiters.get(id)?.delete(done);
            resolve();
          }
          let set = waiters.get(id);
          if (!set) waiters.set(id, (set = new Set()));
          set.add(done);
        });
      }
    },

    async close(): Promise<void> {
      for (const id of [...waiters.keys()]) wake(id);
      await unlisten?.();
    },
  };
}
export type ApprovalWaiter = ReturnType<typeof createApprovalWaiter>;
