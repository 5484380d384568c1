import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { silentNotifier, type ApprovalNotifier } from './approvals/approval-notifier.ts';
import { registerApprovalRoutes } from './approvals/approval-routes.ts';
import { createApprovalService, type ApprovalService } from './approvals/approval-service.ts';
import { createApprovalWaiter } from './approvals/approval-waiter.ts';
import { createApprovalsRepository } from './approvals/approvals-repository.ts';
import { createCallbackOutbox, type CallbackOutbox } from './approvals/callback-outbox.ts';
import { createApiKeysRepository } from './auth/api-keys-repository.ts';
import { ensureBootstrapKey, loadKeyring } from './auth/keyring.ts';
import { registerCallRoutes } from './calls/call-routes.ts';
import { createCallService, type CallService } from './calls/call-service.ts';
import { createCallsRepository } from './calls/calls-repository.ts';
import { createStateReader } from './calls/state-reader.ts';
import { createStateService } from './calls/state-service.ts';
import type { Config } from './config.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createOutboxRepository, OUTBOX_CHANNEL } from './db/outbox-repository.ts';
import { transactorFor } from './db/transact.ts';
import { openStore, type Store } from './db/store.ts';
import { registerExecutionRoutes } from './executions/execution-routes.ts';
import { createExecutionService } from './executions/execution-service.ts';
import { createExecutionsRepository } from './executions/executions-repository.ts';
import { registerAuth } from './http/auth-hook.ts';
import { lowLevelErrorOptions } from './http/client-errors.ts';
import { registerErrorHandling } from './http/error-handler.ts';
import { registerHealthRoutes } from './http/health-routes.ts';
import { registerInputGuard } from './http/input-guard.ts';
import { loggerOptions, OneLineRequestLog } from './http/logging.ts';
import { registerAddressLimits, registerKeyLimit, registerRateLimitStore } from './http/rate-limits.ts';
import { createMetrics, type Metrics } from './metrics/metrics.ts';
import { loadPolicyFile, type PolicyRule } from './policy/policy.ts';
import { createFetchUrlTool } from './tools/fetch-url.ts';
import { createParamValidator } from './tools/param-validator.ts';
import { createToolRegistry, type ToolRegistry } from './tools/tool-registry.ts';
import { registerToolRoutes } from './tools/tool-routes.ts';
import { createToolsRepository } from './tools/tools-repository.ts';
import { registerTraceRoutes } from './traces/trace-routes.ts';
import { createTracesRepository } from './traces/traces-repository.ts';
import { startSweepSchedule } from './sweeps/sweep-scheduler.ts';
import { createCallRecovery } from './sweeps/call-recovery.ts';
import { createCronClaimsRepository } from './sweeps/cron-claims-repository.ts';
import { createSweepService, SWEEP_ACTOR, type SweepService } from './sweeps/sweep-service.ts';
import { createCallFreezer } from './approvals/freeze.ts';
import { createInvokeCommand } from './slack/invoke-command.ts';
import { createSlackApp, createSlackClient } from './slack/slack-app.ts';
import { createSlackNotifier } from './slack/slack-notifier.ts';
import { createSlackOutbox, type SlackOutbox } from './slack/slack-outbox.ts';

/**
 * One run at a time. A caller that arrives during a run may have written something that run
 * already passed over, so it gets one more run after it, shared with everyone else who asks
 * meanwhile.
 */
function coalescedRunner<T>(run: () => Promise<T>): () => Promise<T> {
  let current: Promise<T> | null = null;
  let next: Promise<T> | null = null;
  const start = () =>
    (current = run().finally(() => {
      current = null;
    }));
  return () => {
    if (!current) return start();
    next ??= current
      .catch(() => undefined)
      .then(() => {
        next = null;
        return current ?? start();
      });
    return next;
  };
}

/** INVOKE_TRUST_PROXY as Fastify takes it: a hop count becomes "trust the nearest n hops". */
function trustProxyOption(setting: Config['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof setting === 'number') return (_address, hop) => hop < setting;
  return typeof setting === 'boolean' ? setting : [...setting];
}

export interface AppDeps {
  /** An already-open store (tests share one across apps); otherwise one is opened from config. */
  store?: Store;
  logger?: FastifyServerOptions['logger'];
  sleep?: (ms: number) => Promise<void>;
  /**
   * A worker that runs one job and exits (`npm run sweep`): no generated key, no Slack
   * connection (Socket Mode would receive clicks it may not live to handle), no timers.
   */
  headless?: boolean;
}

export interface BuiltApp {
  app: FastifyInstance;
  store: Store;
  services: {
    calls: CallService;
    registry: ToolRegistry;
    metrics: Metrics;
    approvals: ApprovalService;
    callbacks: CallbackOutbox;
    slackOutbox: SlackOutbox | null;
    deliverOutbox: () => Promise<{ delivered: number; failed: number }>;
    sweeps: SweepService;
  };
  /** Set when no key was configured and one was generated at this start: shown once. */
  generatedApiKey: string | null;
}

/** The composition root: opens the store, migrates, wires services, registers routes. */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<BuiltApp> {
  const serverRules: PolicyRule[] = config.policyFile ? (await loadPolicyFile(config.policyFile)).rules : [];
  const store = deps.store ?? (await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }));
  await migrateToLatest(store.db);
  const apiKeys = createApiKeysRepository(store.db);
  const generatedApiKey = deps.headless ? null : await ensureBootstrapKey(config, apiKeys);
  const keyring = await loadKeyring(config, apiKeys);
  const transact = transactorFor(store.db);

  const metrics = createMetrics();
  const fetchUrl = createFetchUrlTool({
    maxBytes: config.fetchMaxBytes,
    timeoutMs: config.fetchTimeoutMs,
    maxRedirects: 5,
    allowHosts: [...config.fetchAllowHosts],
  });
  const registry = createToolRegistry({
    repository: createToolsRepository(store.db),
    validator: createParamValidator(),
    builtins: [fetchUrl],
    defaultTimeoutMs: config.toolTimeoutMs,
  });
  const stopToolNotifications = await store.listen('invoke_tools', (provider) => registry.forgetProvider(provider));
  const callsRepository = createCallsRepository(store);
  const approvalsRepository = createApprovalsRepository(store.db);
  // Slack, when configured: approval cards and decisions go through its outbox.
  const outboxRepository = createOutboxRepository(store.db);
  const slackOutbox = config.slack ? createSlackOutbox(outboxRepository, approvalsRepository, createSlackClient(config.slack)) : null;
  const slackNotifier = config.slack && slackOutbox ? createSlackNotifier(transact, approvalsRepository, slackOutbox, config.slack.approvalChannel, config.slack.approverIds) : null;
  const notifier: ApprovalNotifier = slackNotifier ?? silentNotifier;
  const callbacks = createCallbackOutbox(outboxRepository, { secret: config.callbackSecret, allowHosts: config.callbackAllowHosts });
  const tracesRepository = createTracesRepository(store.db);
  const calls = createCallService({
    config,
    registry,
    calls: callsRepository,
    traces: tracesRepository,
    transact,
    freezer: createCallFreezer({ config, approvals: approvalsRepository, notifier }),
    assertCallbackUrl: callbacks.assertCallbackUrl,
    metrics,
    serverRules,
    sleep: deps.sleep,
  });
  const stateReader = createStateReader(registry);
  const state = createStateService(stateReader);
  const executions = createExecutionService(createExecutionsRepository(store.db), calls);
  const waiter = createApprovalWaiter(store);
  await waiter.start();
  const approvalService = createApprovalService({
    config,
    transact,
    approvals: approvalsRepository,
    calls: callsRepository,
    callService: calls,
    traces: tracesRepository,
    registry,
    stateReader,
    outbox: callbacks,
    waiter,
    notifier,
  });
  // One pass per kind at a time in this process (the timer, the sweeps and Slack handlers all
  // ask for one), the two kinds side by side so a slow callback receiver never delays Slack.
  const deliverCallbacks = coalescedRunner(() => callbacks.deliverDue());
  const deliverSlack = coalescedRunner(async () => (slackOutbox ? slackOutbox.deliverDue() : { delivered: 0, failed: 0 }));
  const deliverOutbox = async () => {
    const [sent, posted] = await Promise.all([deliverCallbacks(), deliverSlack()]);
    return { delivered: sent.delivered + posted.delivered, failed: sent.failed + posted.failed };
  };
  const slackApp =
    config.slack && slackOutbox && slackNotifier && !deps.headless
      ? createSlackApp({
          config: config.slack,
          approvals: approvalService,
          notifier: slackNotifier,
          flushOutbox: deliverSlack,
          runCommand: createInvokeCommand({ db: store.db, traces: tracesRepository, calls: callsRepository, approvals: approvalService, registry }).run,
          cardChannel: async (id) =>
            (await approvalsRepository.slackCardOf(id))?.slack_channel ?? null,
          log: { debug: (obj, msg) => app.log.debug(obj, msg), warn: (obj, msg) => app.log.warn(obj, msg), error: (obj, msg) => app.log.error(obj, msg) },
        })
      : null;
  // Deliver due callbacks and Slack posts from this process too (the sweeps also do), so agents
  // and approvers hear back promptly.
  const sweeps = createSweepService({
    config,
    transact,
    approvals: approvalService,
    approvalsRepository,
    calls: callsRepository,
    traces: tracesRepository,
    recovery: createCallRecovery({
      transact,
      callService: calls,
      calls: callsRepository,
      traces: tracesRepository,
      approvals: approvalsRepository,
      approvalService,
      stateReader,
      notifier,
      metrics,
      actor: SWEEP_ACTOR,
    }),
    registry,
    notifier,
    deliverOutbox,
    trimCronClaims: createCronClaimsRepository(store.db).trimOlderThanADay,
    log: { warn: (obj, msg) => app.log.warn(obj, msg) },
  });
  // This process delivers as soon as an outbox row commits anywhere (NOTIFY at commit), and on
  // a timer as the safety net. An interval of 0 leaves delivery to the sweeps.
  const deliversItself = config.outboxIntervalMs > 0 && !deps.headless;
  const outboxTimer = deliversItself
    ? setInterval(() => {
        deliverOutbox().catch((error: unknown) => app.log.warn({ err: error }, 'outbox delivery pass failed'));
      }, config.outboxIntervalMs)
    : null;
  outboxTimer?.unref();
  const stopOutboxNotifications = deliversItself
    ? await store.listen(OUTBOX_CHANNEL, (kind) => {
        const deliver = kind === 'slack' ? deliverSlack : deliverCallbacks;
        deliver().catch((error: unknown) => app.log.warn({ err: error }, 'outbox delivery pass failed'));
      })
    : null;

  const app = Fastify({
    logger: deps.logger ?? loggerOptions({ level: config.logLevel }),
    bodyLimit: config.bodyLimitBytes,
    genReqId: () => crypto.randomUUID(),
    logController: new OneLineRequestLog(),
    trustProxy: trustProxyOption(config.trustProxy),
    ...lowLevelErrorOptions,
  });
  registerErrorHandling(app);
  await registerRateLimitStore(app);
  registerAddressLimits(app, config.rateLimits);
  registerInputGuard(app);
  registerAuth(app, keyring);
  registerKeyLimit(app, config.rateLimits);
  registerHealthRoutes(app, store, metrics);
  registerToolRoutes(app, registry);
  registerCallRoutes(app, calls, state);
  registerTraceRoutes(app, tracesRepository, callsRepository);
  registerExecutionRoutes(app, executions);
  registerApprovalRoutes(app, approvalService);
  slackApp?.register(app);
  await slackApp?.start();
  const sweepSchedule = startSweepSchedule({
    expression: deps.headless ? 'off' : config.sweepCron,
    db: store.db,
    sweeps,
    metrics,
    log: { info: (obj, msg) => app.log.info(obj, msg), warn: (obj, msg) => app.log.warn(obj, msg) },
  });
  app.addHook('onClose', async () => {
    if (outboxTimer) clearInterval(outboxTimer);
    await sweepSchedule.stop();
    await slackApp?.stop();
    await waiter.close();
    await stopToolNotifications();
    await stopOutboxNotifications?.();
    await callbacks.close();
    await callsRepository.close();
    await fetchUrl.close();
    if (!deps.store) await store.close();
  });
  return { app, store, services: { calls, registry, metrics, approvals: approvalService, callbacks, slackOutbox, deliverOutbox, sweeps }, generatedApiKey };
}
