import { buildApp } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { DataDirInUseError } from './db/store.ts';
import { loggerOptions } from './http/logging.ts';

/** `npm start`: load config, build the app, listen, and shut down cleanly on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = loadConfig();
  const pretty = process.stdout.isTTY ? { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss', ignore: 'pid,hostname' } } : undefined;
  const { app, store, generatedApiKey } = await buildApp(config, {
    logger: loggerOptions({ level: config.logLevel, transport: pretty }),
  });

  if (generatedApiKey) {
    console.log(
      [
        '',
        'No API key was configured, so Invoke generated one. It is shown only this once;',
        'the store keeps only its hash. Send it as the X-API-Key header:',
        '',
        `    ${generatedApiKey}`,
        '',
        'Set INVOKE_API_KEYS (or INVOKE_API_KEY_SCOPES) to use keys of your own.',
        '',
      ].join('\n'),
    );
  }

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    await app.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  await app.listen({ host: config.host, port: config.port });
  app.log.info({ store: store.kind === 'postgres' ? 'postgres (DATABASE_URL)' : `embedded (${config.dataDir})` }, 'Invoke is ready');
}

main().catch((error: unknown) => {
  // Problems the operator fixes (a bad variable, a directory another process holds): the message alone.
  if (error instanceof ConfigError || error instanceof DataDirInUseError) console.error(error.message);
  else console.error('Invoke failed to start:', error);
  process.exit(1);
});
