// The demo's report: a table of what was counted at the mocks, naive against Invoke, then what
// each run concluded and scenario 5's Slack thread.
import type { DemoResult } from './results.ts';

export function formatTable(result: DemoResult): string {
  const header = ['#', 'Scenario', 'Counted at the mocks', 'Naive', 'Invoke', 'Invoke answer'];
  const rows: string[][] = [];
  for (const s of result.scenarios) {
    if (s.error) {
      rows.push([String(s.id), s.title, `could not run: ${s.error}`, '', '', '']);
      continue;
    }
    s.measures.forEach((m, i) => {
      const naive = s.naive?.counts[m.key];
      const invoke = s.invoke?.counts[m.key];
      rows.push([
        i === 0 ? String(s.id) : '',
        i === 0 ? s.title : '',
        m.label,
        naive === undefined ? '-' : String(naive),
        invoke === undefined ? '-' : String(invoke),
        i === 0 ? (s.invoke?.outcome ?? '') : '',
      ]);
    });
  }
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => r[col]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, col) => (col === 3 || col === 4 ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [line(header), rule];
  rows.forEach((row, i) => {
    if (i > 0 && row[0] !== '') out.push('');
    out.push(line(row));
  });

  out.push('', 'What each run concluded:');
  for (const s of result.scenarios) {
    if (s.error) continue;
    out.push(`  ${s.id}. naive:  ${s.naive?.summary ?? '-'}`, `     Invoke: ${s.invoke?.summary ?? '-'}`);
  }
  if (result.slackThread.length > 0) {
    out.push('', 'Scenario 5 in the Slack emulator (the card and its thread):');
    for (const entry of result.slackThread) out.push(`  ${entry}`);
  }
  const failed = result.scenarios.filter((s) => s.error).length;
  out.push(
    '',
    `Naive agent: direct calls, ${result.agentTimeoutMs} ms client timeout, one immediate retry on a timeout. ` +
      `Through Invoke: the same loop against POST /v1/call. Flaky tool stalls first ${result.flakyFailFirstN}. ` +
      `${(result.durationMs / 1000).toFixed(1)} s${failed ? `, ${failed} scenario(s) could not run` : ''}.`,
  );
  return out.join('\n');
}
