/** Human output: aligned columns, cut to a width a terminal shows on one line. */
export function table(headers: string[], rows: Array<Array<string | number | boolean | null | undefined>>, maxCell = 60): string {
  const cells = rows.map((row) => row.map((cell) => oneLine(cell === null || cell === undefined ? '-' : String(cell), maxCell)));
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
