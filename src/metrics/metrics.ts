import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one app instance (its own registry, so tests and replicas do not share). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'invoke_process_' });
  return {
    registry,
    calls: new Counter({ name: 'invoke_calls_total', help: 'Calls by final status', labelNames: ['status'] as const, registers: [registry] }),
    retries: new Counter({ name: 'invoke_retries_total', help: 'Retries after a failed or unknown attempt', registers: [registry] }),
    reconciliations: new Counter({
      name: 'invoke_reconciliations_total',
      help: 'Reconciliations of unknown outcomes by decision',
      labelNames: ['decision'] as const,
      registers: [registry],
    }),
    replays: new Counter({ name: 'invoke_idempotent_replays_total', help: 'Repeated idempotency keys answered from the store', registers: [registry] }),
    sweepPasses: new Counter({ name: 'invoke_sweep_passes_total', help: 'Sweep passes run by this process', registers: [registry] }),
    sweepRows: new Counter({ name: 'invoke_sweep_rows_total', help: 'Rows changed by sweeps, by step', labelNames: ['step'] as const, registers: [registry] }),
    callDuration: new Histogram({
      name: 'invoke_call_duration_seconds',
      help: 'Time to answer a call, by status',
      labelNames: ['status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
