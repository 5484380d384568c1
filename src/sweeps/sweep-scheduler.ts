import { hostname } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { createCronClaimsRepository } from './cron-claims-repository.ts';
import type { SweepCounts, SweepService } from './sweep-service.ts';

/**
 * node-cron's run coordinator backed by Postgres: one claim row per fire, won by a conditional
 * insert, so on many replicas each scheduled pass runs on one of them. (Passes would be safe on
 * all at once; this only saves the duplicate work.)
 */
export function createPostgresRunCoordinator(db: Kysely<Database>, replicaId: string) {
  const claims = createCronClaimsRepository(db);
  return {
    shouldRun: (key: string): Promise<boolean> => claims.claim(key, replicaId),
  };
}

export function formatCounts(counts: SweepCounts): string {
  return Object.entries(counts)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ');
}

/** Schedules sweep passes with node-cron (`INVOKE_SWEEP_CRON`, seconds allowed); started with the server. */
export function startSweepSchedule(options: {
  expression: string;
  db: Kysely<Database>;
  sweeps: SweepService;
  metrics: Metrics;
  log: { info(obj: unknown, msg?: string): void; warn(obj: unknown, msg?: string): void };
}): { stop(): Promise<void> } {
  const { expression, db, sweeps, metrics, log } = options;
  if (expression === 'off') return { stop: async () => {} };
  const replicaId = `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`;
  const coordinator = createPostgresRunCoordinator(db, replicaId);
  // While the store is down the claim cannot be written: skip the pass (the next fire catches up)
  // and say so in our log, not through node-cron's console logger.
  const runCoordinator = {
    async shouldRun(key: string): Promise<boolean> {
      try {
        return await coordinator.shouldRun(key);
      } catch (error) {
        log.warn({ err: error }, 'sweep pass skipped: the store is unavailable');
        return false;
      }
    },
  };
  const task: ScheduledTask = cron.schedule(
    expression,
    async () => {
      const counts = await sweeps.runPass();
      metrics.sweepPasses.inc();
      for (const [step, value] of Object.entries(counts) as Array<[string, number]>) if (value > 0) metrics.sweepRows.inc({ step }, value);
      log.info({ sweep: counts }, `sweep pass: ${formatCounts(counts)}`);
    },
    { name: 'invoke-sweep', noOverlap: true, distributed: true, runCoordinator },
  );
  task.on('execution:failed', (context) => log.warn({ err: context.execution?.error }, 'sweep pass failed'));
  return {
    async stop() {
      await task.destroy();
    },
  };
}
