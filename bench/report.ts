/** How the bench shows its figures: tables on the terminal, a JSON file, and an SVG chart. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChartPoint, Table } from './section.ts';

export function printTable(table: Table): void {
  const widths = table.columns.map((column, i) => Math.max(column.length, ...table.rows.map((row) => (row[i] ?? '').length)));
  // The first column is a name: left-aligned; figures are right-aligned.
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 || table.columns[i] === 'case' ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(`\n${table.title}`);
  console.log(line(table.columns));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of table.rows) console.log(line(row));
  for (const note of table.notes) console.log(`  ${note}`);
}

export async function writeJson(dir: string, fileName: string, value: unknown): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, fileName);
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
  return file;
}

const PERCENTILES = ['p50', 'p90', 'p99'] as const;
const COLORS = { direct: ['#9ecae1', '#4292c6', '#08519c'], governed: ['#fdae6b', '#f16913', '#a63603'] } as const;

/**
 * Latency percentiles by concurrency, direct vs through Invoke, one panel per store. Log scale:
 * a direct call takes a fraction of a millisecond, a governed one under load many milliseconds.
 */
export function latencySvg(panels: Array<{ store: string; points: ChartPoint[] }>): string {
  const panelWidth = 420;
  const height = 320;
  const top = 40;
  const bottom = 60;
  const left = 56;
  const plotHeight = height - top - bottom;
  const values = panels.flatMap((p) => p.points.flatMap((pt) => PERCENTILES.map((q) => pt[q]))).filter((v) => v > 0);
  const low = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...values)));
  const y = (v: number) => top + plotHeight * (1 - (Math.log10(Math.max(v, low)) - Math.log10(low)) / (Math.log10(high) - Math.log10(low)));
  const out: string[] = [];
  const text = (x: number, yy: number, s: string, attrs = '') => out.push(`<text x="${x.toFixed(1)}" y="${yy.toFixed(1)}" ${attrs}>${s}</text>`);

  panels.forEach((panel, index) => {
    const x0 = index * panelWidth;
    text(x0 + left, 22, `${panel.store}: latency (ms, log scale)`, 'font-weight="bold"');
    for (let tick = low; tick <= high; tick *= 10) {
      out.push(`<line x1="${x0 + left}" x2="${x0 + panelWidth - 16}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#ddd"/>`);
      text(x0 + left - 6, y(tick) + 4, String(tick), 'text-anchor="end"');
    }
    const concurrencies = [...new Set(panel.points.map((p) => p.concurrency))].sort((a, b) => a - b);
    const groupWidth = (panelWidth - left - 16) / Math.max(1, concurrencies.length);
    const bar = groupWidth / 8;
    concurrencies.forEach((c, g) => {
      const gx = x0 + left + g * groupWidth + bar;
      (['direct', 'governed'] as const).forEach((pathName, side) => {
        const point = panel.points.find((p) => p.concurrency === c && p.path === pathName);
        if (!point) return;
        PERCENTILES.forEach((q, k) => {
          const bx = gx + (side * 3 + k) * bar;
          const by = y(point[q]);
          out.push(
            `<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${(bar - 1).toFixed(1)}" height="${(top + plotHeight - by).toFixed(1)}" fill="${COLORS[pathName][k]}"><title>${pathName} c=${c} ${q}: ${point[q].toFixed(2)} ms</title></rect>`,
          );
        });
      });
      text(gx + 3 * bar, top + plotHeight + 18, `c=${c}`, 'text-anchor="middle"');
    });
  });
  // One legend for all panels.
  let lx = left;
  for (const pathName of ['direct', 'governed'] as const) {
    PERCENTILES.forEach((q, k) => {
      out.push(`<rect x="${lx}" y="${height - 24}" width="12" height="12" fill="${COLORS[pathName][k]}"/>`);
      text(lx + 16, height - 14, `${pathName === 'direct' ? 'direct' : '/v1/call'} ${q}`);
      lx += 110;
    });
  }
  const width = Math.max(panelWidth * panels.length, lx);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}
