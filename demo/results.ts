// What a demo run produces: per scenario, the counts taken at the mocks for the naive run and the
// run through Invoke, and what each concluded. `runDemo` returns it; the report prints it.

export interface DemoOptions {
  /** How many calls the flaky MCP tool stalls on first; default FLAKY_FAIL_FIRST_N, else 2. */
  flakyFailFirstN?: number;
  /** The agent's HTTP/MCP client timeout, the same with and without Invoke; default 1500 ms. */
  agentTimeoutMs?: number;
  /** Progress lines while it runs. */
  log?: (line: string) => void;
  /** Aborting stops everything the demo started; `runDemo` then rejects with `DemoInterrupted`. */
  signal?: AbortSignal;
}

/** One line of the table: a count taken at a mock (or the Slack emulator) after each run. */
export interface Measure {
  key: string;
  label: string;
}

export interface RunResult {
  /** Counted at the mocks after the run; a key missing on one side does not apply to it. */
  counts: Record<string, number>;
  /** What the agent concluded (naive) or what Invoke answered, in words. */
  summary: string;
  /** Facts from the answers along the way (attempts, replay header, verify status...). */
  details?: Record<string, string | number | boolean>;
}

export interface InvokeRunResult extends RunResult {
  /** Invoke's answer, verbatim: a call status, an approval outcome or a verify decision. */
  outcome: string;
}

export interface ScenarioResult {
  id: number;
  title: string;
  measures: Measure[];
  naive: RunResult | null;
  invoke: InvokeRunResult | null;
  /** Set when the scenario could not run to the end. */
  error?: string;
}

export interface DemoResult {
  ok: boolean;
  flakyFailFirstN: number;
  agentTimeoutMs: number;
  durationMs: number;
  scenarios: ScenarioResult[];
  /** Scenario 5's card thread as the Slack emulator holds it: one line per message. */
  slackThread: string[];
}

export class DemoInterrupted extends Error {
  constructor() {
    super('the demo was interrupted; everything it started was stopped');
    this.name = 'DemoInterrupted';
  }
}
