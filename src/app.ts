import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { silentNotifier, type ApprovalNotifier } from './approvals/approval-notifier.ts';
import { registerApprovalRoutes } from './approvals/approval-routes.ts';
import { createApprovalService, type ApprovalService } from './approvals/approval-service.ts';
import { createApprovalWaiter } from './approvals/approval-waiter.ts';
import { createApprovalsRepository } from './approvals/approvals-repository.ts';
import { createCallbackOutbox, type CallbackOutbox } from './approvals/callback-outbox.ts';
import { createApiKeysRepository } from './auth/api-keys-repository.ts';
import { ensureBootstrapKey, loadKeyring, type Keyring } from './auth/keyring.ts';
import { registerCallRoutes } from './calls/call-routes.ts';
import { createCallService, type CallService } from './calls/call-service.ts';
import type { CallAnswer } from './calls/call-types.ts';
import { createCallsRepository, type CallsRepository } from './calls/calls-repository.ts';
import { createStateReader } from './calls/state-reader.ts';
import { createStateService } from './calls/state-service.ts';
import type { Config } from './config.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createOutboxRepository, OUTBOX_CHANNEL } from './db/outbox-repository.ts';
import { transactorFor } from './db/transact.ts';
import { createVacuumer } from './db/maintenance.ts';
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
import { registerOpenApi, registerOpenApiRoute } from './http/openapi.ts';
import { zodValidatorCompiler } from './http/validation.ts';
import { registerAddressLimits, registerKeyLimit, registerRateLimitStore } from './http/rate-limits.ts';
import { registerMcpRoutes } from './mcp/mcp-routes.ts';
import { createMcpGateway, type McpGateway } from './mcp/mcp-server.ts';
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
import { slackMessageLink } from './slack/mrkdwn.ts';
import { createSlackNotifier } from './slack/slack-notifier.ts';
import { createSlackOutbox, type SlackOutbox } from './slack/slack-outbox.ts';
import { createUserGroups } from './slack/usergroups.ts';
import { noGroups } from './approvals/routing.ts';
import { resolveLinkSecret } from './web/link-secret.ts';
import { createReviewLinkUsesRepository } from './web/review-link-uses-repository.ts';
import { mintReviewLink } from './web/review-links.ts';
import { createReviewService } from './web/review-service.ts';
import { createSigner, type Signer } from './web/signing.ts';
import { registerWebRoutes } from './web/web-routes.ts';

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

/**
 * Slack passes until one ends short of its limit: a backlog bigger than one pass (a burst of
 * approvals, Slack back after an outage) goes on at once, since no commit may come to wake it.
 */
async function deliverAllDue(outbox: SlackOutbox): Promise<{ delivered: number; failed: number }> {
  const total = { delivered: 0, failed: 0 };
  for (;;) {
    const pass = await outbox.deliverDue();
    total.delivered += pass.delivered;
    total.failed += pass.failed;
    if (!pass.more) return total;
  }
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
  /** The time, in milliseconds since the epoch, where a wait is kept in memory (Slack's Retry-After); tests move it. */
  clock?: () => number;
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
    /** The calls' store (its replay counts are held in memory for a second: see flushReplays). */
    callsRepository: CallsRepository;
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

/** What a build opened so far, closed newest first; closing twice closes nothing twice. */
class Closers {
  private readonly open: Array<() => Promise<void> | void> = [];

  add(close: () => Promise<void> | void): void {
    this.open.push(close);
  }

  /** Closes everything, even when one close fails (the first failure is rethrown at the end). */
  async closeAll(): Promise<void> {
    let failure: { error: unknown } | undefined;
    for (let close = this.open.pop(); close; close = this.open.pop()) {
      try {
        await close();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }
}

/** The Fastify instance and its logger, before anything else exists, so every later step can log. */
function createServer(config: Config, deps: AppDeps): FastifyInstance {
  const app = Fastify({
    logger: deps.logger ?? loggerOptions({ level: config.logLevel }),
    bodyLimit: config.bodyLimitBytes,
    genReqId: () => crypto.randomUUID(),
    logController: new OneLineRequestLog(),
    trustProxy: trustProxyOption(config.trustProxy),
    ...lowLevelErrorOptions,
  });
  // Routes declare zod schemas: validated into the same 400 as before (src/http/validation.ts),
  // answers serialized through their schema (loose where the shape is open).
  app.setValidatorCompiler(zodValidatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app);
  return app;
}

/** Opens (or takes) the store, migrates it, and loads the API keys. */
async function openStoreStep(config: Config, deps: AppDeps, closers: Closers): Promise<{ store: Store; keyring: Keyring; generatedApiKey: string | null }> {
  const store = deps.store ?? (await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }));
  // A store the caller passed in is the caller's to close.
  if (!deps.store) closers.add(() => store.close());
  await migrateToLatest(store.db);
  const apiKeys = createApiKeysRepository(store.db);
  const generatedApiKey = deps.headless ? null : await ensureBootstrapKey(config, apiKeys);
  const keyring = await loadKeyring(config, apiKeys);
  return { store, keyring, generatedApiKey };
}

type Services = Awaited<ReturnType<typeof createServices>>;

/** Mints the link any approver may open (cards, the agent's answer, the API), once links are on. */
type ReviewUrlFor = (approval: { id: string; expires_at: Date | string }) => string;

/** Review links and web sessions are signed with one secret; without one (Postgres, none set) they are off. */
async function linkSigningStep(config: Config, log: FastifyBaseLogger): Promise<{ signer: Signer; reviewUrlFor: ReviewUrlFor } | null> {
  const resolved = await resolveLinkSecret(config);
  if (!resolved) {
    log.info('review links and the web dashboard are off: set INVOKE_LINK_SECRET (the same on every replica) to turn them on');
    return null;
  }
  const signer = createSigner(resolved.secret);
  const reviewUrlFor: ReviewUrlFor = (approval) => mintReviewLink(signer, config.publicUrl, { approvalId: approval.id, expiresAt: new Date(approval.expires_at) }).review_url;
  return { signer, reviewUrlFor };
}

/** Repositories and services, wired once; what holds a connection or a listener registers its close. */
async function createServices(config: Config, deps: AppDeps, store: Store, serverRules: PolicyRule[], log: FastifyBaseLogger, closers: Closers, reviewUrlFor: ReviewUrlFor | null) {
  const metrics = createMetrics();
  const transact = transactorFor(store.db);
  const fetchUrl = createFetchUrlTool({
    maxBytes: config.fetchMaxBytes,
    timeoutMs: config.fetchTimeoutMs,
    maxRedirects: 5,
    allowHosts: [...config.fetchAllowHosts],
  });
  closers.add(() => fetchUrl.close());
  const registry = createToolRegistry({
    repository: createToolsRepository(store.db),
    validator: createParamValidator(),
    builtins: [fetchUrl],
    defaultTimeoutMs: config.toolTimeoutMs,
  });
  const stopToolNotifications = await store.listen('invoke_tools', (provider) => registry.forgetProvider(provider));
  closers.add(stopToolNotifications);
  const callsRepository = createCallsRepository(store);
  closers.add(() => callsRepository.close());
  const approvalsRepository = createApprovalsRepository(store.db);
  // Slack, when configured: approval cards and decisions go through its outbox.
  const outboxRepository = createOutboxRepository(store.db);
  const slackClient = config.slack ? createSlackClient(config.slack) : null;
  // User groups named as approvers, resolved once for decisions, DMs and /invoke alike.
  const groups =
    config.slack && slackClient ? createUserGroups(slackClient, { ttlMs: config.slack.userGroupTtlMs, clock: deps.clock, warn: (obj, msg) => log.warn(obj, msg) }) : noGroups;
  const slackOutbox = config.slack && slackClient ? createSlackOutbox(outboxRepository, approvalsRepository, slackClient, deps.clock, groups) : null;
  const slackNotifier =
    config.slack && slackOutbox
      ? // Slack opens absolute links only: the card shows one when INVOKE_PUBLIC_URL is set.
        createSlackNotifier(transact, approvalsRepository, slackOutbox, config.slack.approvalChannel, config.slack.approverIds, config.publicUrl ? reviewUrlFor : null)
      : null;
  const notifier: ApprovalNotifier = slackNotifier ?? silentNotifier;
  const callbacks = createCallbackOutbox(outboxRepository, { secret: config.callbackSecret, allowHosts: config.callbackAllowHosts });
  closers.add(() => callbacks.close());
  const tracesRepository = createTracesRepository(store.db);
  const calls = createCallService({
    config,
    registry,
    calls: callsRepository,
    traces: tracesRepository,
    transact,
    freezer: createCallFreezer({ config, approvals: approvalsRepository, notifier, reviewUrl: reviewUrlFor }),
    assertCallbackUrl: (url, field) => callbacks.assertCallbackUrl(url, field),
    metrics,
    serverRules,
    sleep: deps.sleep,
  });
  const stateReader = createStateReader(registry);
  const state = createStateService(stateReader);
  const executions = createExecutionService(createExecutionsRepository(store.db), calls, config.executionTool);
  const waiter = createApprovalWaiter(store);
  await waiter.start();
  closers.add(() => waiter.close());
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
    groups,
    reviewUrl: reviewUrlFor,
  });
  // One pass per kind at a time in this process (the timer, the sweeps and Slack handlers all
  // ask for one), the two kinds side by side so a slow callback receiver never delays Slack.
  const deliverCallbacks = coalescedRunner(() => callbacks.deliverDue());
  const deliverSlack = coalescedRunner(async () => (slackOutbox ? deliverAllDue(slackOutbox) : { delivered: 0, failed: 0 }));
  const deliverOutbox = async () => {
    const [sent, posted] = await Promise.all([deliverCallbacks(), deliverSlack()]);
    return { delivered: sent.delivered + posted.delivered, failed: sent.failed + posted.failed };
  };
  const cronClaims = createCronClaimsRepository(store.db);
  // The sweeps deliver due callbacks and Slack posts too, so agents and approvers hear back promptly.
  const sweeps = createSweepService({
    config,
    transact,
    approvals: approvalService,
    approvalsRepository,
    calls: callsRepository,
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
    trimCronClaims: () => cronClaims.trimOlderThanADay(),
    vacuumDue: createVacuumer(store),
    log: { warn: (obj, msg) => log.warn(obj, msg), info: (obj, msg) => log.info(obj, msg) },
  });
  return {
    metrics,
    registry,
    calls,
    state,
    executions,
    callsRepository,
    tracesRepository,
    approvalsRepository,
    approvalService,
    callbacks,
    slackOutbox,
    slackNotifier,
    groups,
    deliverCallbacks,
    deliverSlack,
    deliverOutbox,
    sweeps,
  };
}

/** The Bolt app, when Slack is configured and this process serves (a headless worker does not). */
function createSlackStep(config: Config, deps: AppDeps, store: Store, core: Services, log: FastifyBaseLogger) {
  const { slackOutbox, slackNotifier } = core;
  if (!config.slack || !slackOutbox || !slackNotifier || deps.headless) return null;
  const invokeCommand = createInvokeCommand({ db: store.db, traces: core.tracesRepository, calls: core.callsRepository, approvals: core.approvalService, registry: core.registry });
  return createSlackApp({
    config: config.slack,
    approvals: core.approvalService,
    notifier: slackNotifier,
    groups: core.groups,
    flushOutbox: core.deliverSlack,
    runCommand: (text, now, caller) => invokeCommand.run(text, now, caller),
    cardChannel: async (id) => (await core.approvalsRepository.slackCardOf(id))?.slack_channel ?? null,
    log: { debug: (obj, msg) => log.debug(obj, msg), warn: (obj, msg) => log.warn(obj, msg), error: (obj, msg) => log.error(obj, msg) },
  });
}

/** The MCP door: the call and approval services, the stored answers, and the approval cards' Slack links. */
function createMcpStep(config: Config, core: Services, log: FastifyBaseLogger): McpGateway {
  return createMcpGateway({
    config,
    registry: core.registry,
    calls: core.calls,
    approvals: core.approvalService,
    callRecord: async (callId) => {
      const detail = (await core.callsRepository.findCallDetails([callId])).get(callId);
      return detail ? { api_key_id: detail.api_key_id, answer: detail.answer as CallAnswer | null } : null;
    },
    cardLink: async (approvalId) => {
      const card = await core.approvalsRepository.slackCardOf(approvalId);
      return card?.slack_channel && card.slack_ts ? slackMessageLink(card.slack_channel, card.slack_ts) : null;
    },
    log: { warn: (obj, msg) => log.warn(obj, msg) },
  });
}

/** Hooks (limits, input guard, auth) in the order they must run, the document, then the routes. */
async function registerRoutes(
  app: FastifyInstance,
  config: Config,
  store: Store,
  keyring: Keyring,
  core: Services,
  links: { signer: Signer; reviewUrlFor: ReviewUrlFor } | null,
): Promise<void> {
  await registerRateLimitStore(app);
  registerAddressLimits(app, config.rateLimits);
  registerInputGuard(app);
  registerAuth(app, keyring);
  registerKeyLimit(app, config.rateLimits);
  await registerOpenApi(app);
  registerOpenApiRoute(app);
  registerHealthRoutes(app, store, core.metrics);
  registerToolRoutes(app, core.registry, config.requireApprovalAt);
  registerCallRoutes(app, core.calls, core.state);
  registerTraceRoutes(app, core.tracesRepository, core.callsRepository);
  registerExecutionRoutes(app, core.executions);
  registerApprovalRoutes(app, core.approvalService, links?.reviewUrlFor ?? null);
  registerMcpRoutes(app, createMcpStep(config, core, app.log));
  if (links) {
    const review = createReviewService({
      approvals: core.approvalService,
      uses: createReviewLinkUsesRepository(store.db),
      signer: links.signer,
      keyring,
      publicUrl: config.publicUrl,
    });
    await registerWebRoutes(app, { review, approvals: core.approvalService });
  }
}

/**
 * Outbox delivery as soon as an outbox row commits anywhere (NOTIFY at commit), on a timer as
 * the safety net, and the sweep schedule. An outbox interval of 0 leaves delivery to the sweeps;
 * a headless worker runs neither.
 */
async function startBackgroundWork(config: Config, deps: AppDeps, store: Store, core: Services, log: FastifyBaseLogger, closers: Closers): Promise<void> {
  const { deliverOutbox, deliverSlack, deliverCallbacks } = core;
  const failed = (error: unknown) => log.warn({ err: error }, 'outbox delivery pass failed');
  if (config.outboxIntervalMs > 0 && !deps.headless) {
    // Fire and forget: a pass that fails is logged by `failed`, and the next tick tries again.
    const outboxTimer = setInterval(() => void deliverOutbox().catch(failed), config.outboxIntervalMs);
    outboxTimer.unref();
    closers.add(() => clearInterval(outboxTimer));
    const stopOutboxNotifications = await store.listen(OUTBOX_CHANNEL, (kind) => {
      const deliver = kind === 'slack' ? deliverSlack : deliverCallbacks;
      deliver().catch(failed);
    });
    closers.add(stopOutboxNotifications);
  }
  const sweepSchedule = startSweepSchedule({
    expression: deps.headless ? 'off' : config.sweepCron,
    db: store.db,
    sweeps: core.sweeps,
    metrics: core.metrics,
    log: { info: (obj, msg) => log.info(obj, msg), warn: (obj, msg) => log.warn(obj, msg) },
  });
  closers.add(() => sweepSchedule.stop());
}

/**
 * Builds in order: the Fastify instance (and its logger) first, then the store, the services,
 * Slack, the routes, and the background work (outbox delivery, sweeps). Each step that opens
 * something registers how to close it; `app.close()` closes them newest first, and a step that
 * fails closes what the steps before it opened, so a failed build leaves nothing open (no
 * data-dir lock, no pool, no timer).
 */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<BuiltApp> {
  const app = createServer(config, deps);
  const closers = new Closers();
  app.addHook('onClose', async () => closers.closeAll());
  try {
    const serverRules: PolicyRule[] = config.policyFile ? (await loadPolicyFile(config.policyFile)).rules : [];
    const { store, keyring, generatedApiKey } = await openStoreStep(config, deps, closers);
    const links = await linkSigningStep(config, app.log);
    const core = await createServices(config, deps, store, serverRules, app.log, closers, links?.reviewUrlFor ?? null);
    const slackApp = createSlackStep(config, deps, store, core, app.log);
    await registerRoutes(app, config, store, keyring, core, links);
    slackApp?.register(app);
    if (slackApp) {
      closers.add(() => slackApp.stop());
      await slackApp.start();
    }
    await startBackgroundWork(config, deps, store, core, app.log, closers);
    const { calls, callsRepository, registry, metrics, approvalService, callbacks, slackOutbox, deliverOutbox, sweeps } = core;
    return { app, store, services: { calls, callsRepository, registry, metrics, approvals: approvalService, callbacks, slackOutbox, deliverOutbox, sweeps }, generatedApiKey };
  } catch (error) {
    await closers.closeAll();
    await app.close().catch(() => undefined);
    throw error;
  }
}
