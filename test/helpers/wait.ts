/**
 * Polls `probe` every 20 ms until it gives a truthy value, and returns that value; throws after
 * `ms`. For effects that land asynchronously: outbox deliveries at the Slack emulator, pages.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
