/** One step of a call's trace: append-only. */
export interface TraceEvent {
  step: string;
  status: string;
  at: string;
  duration_ms?: number;
  detail?: Record<string, unknown>;
}

/**
 * Collects a call's trace events in order; the call service persists the pending ones at the
 * points that matter (before the tool is touched, and at the end).
 */
export class TraceRecorder {
  readonly events: TraceEvent[] = [];
  private flushedCount = 0;

  record(step: string, status: string, detail?: Record<string, unknown>, durationMs?: number): TraceEvent {
    const event: TraceEvent = { step, status, at: new Date().toISOString() };
    if (durationMs !== undefined) event.duration_ms = Math.round(durationMs);
    if (detail !== undefined) event.detail = detail;
    this.events.push(event);
    return event;
  }

  /** Events not yet persisted, left pending. */
  peekPending(): TraceEvent[] {
    return this.events.slice(this.flushedCount);
  }

  /** Events not yet persisted; marks them persisted. */
  takePending(): TraceEvent[] {
    const pending = this.peekPending();
    this.flushedCount = this.events.length;
    return pending;
  }
}
