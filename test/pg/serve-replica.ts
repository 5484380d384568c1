import type { AddressInfo } from 'node:net';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';

/**
 * One Invoke replica as its own process, for the cross-process race tests:
 * `node --import tsx test/pg/serve-replica.ts`. Config comes from the environment; it listens on
 * 127.0.0.1 and `PORT` (0: any free port), prints `{"port": N}` as one JSON line on stdout once it
 * accepts connections, and closes cleanly on SIGTERM or SIGINT.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const { app } = await buildApp(config, { logger: false });

  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  await app.listen({ host: '127.0.0.1', port: config.port });
  const { port } = app.server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
}

main().catch((error: unknown) => {
  console.error('replica failed to start:', error);
  process.exit(1);
});
