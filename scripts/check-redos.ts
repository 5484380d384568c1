import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { check, type Diagnostics } from 'recheck';
import ts from 'typescript';

/**
 * ReDoS check: every regular expression literal (and `RegExp(...)` / `new RegExp(...)` with a
 * literal pattern) under src/ is found with the TypeScript parser and checked with recheck.
 * Exits 1 when one is vulnerable, or when one cannot be decided (unknown) and has no
 * `// redos-checked: <reason>` comment on the line above saying a person reviewed it.
 * A RegExp built from a non-literal pattern is listed as a warning: recheck cannot see it.
 *
 * Run: npx tsx scripts/check-redos.ts [dir...]   (default: src)
 */

export interface FoundRegex {
  file: string;
  line: number;
  /** The pattern between the slashes (or the literal string given to RegExp). */
  source: string;
  flags: string;
  /** The `// redos-checked: <reason>` text on the line above, if any. */
  reviewed?: string;
}

export interface DynamicRegex {
  file: string;
  line: number;
  text: string;
}

export type Verdict = 'safe' | 'vulnerable' | 'unknown';

export interface CheckedRegex extends FoundRegex {
  verdict: Verdict;
  /** recheck's complexity summary ("linear", "2nd degree polynomial", ...) or its error. */
  detail: string;
}

const REVIEW_MARK = 'redos-checked:';

/** Regular expressions written in one source text, and RegExp calls whose pattern is not a literal. */
export function findRegexes(file: string, text: string): { found: FoundRegex[]; dynamic: DynamicRegex[] } {
  const sourceFile = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lines = text.split('\n');
  const found: FoundRegex[] = [];
  const dynamic: DynamicRegex[] = [];

  const lineOf = (node: ts.Node) => sourceFile.getLineAndCharacterOfPosition(node.getStart(sourceFile)).line;
  const add = (node: ts.Node, source: string, flags: string) => {
    const line = lineOf(node);
    const reviewed = reviewNoteAbove(lines, line);
    found.push({ file, line: line + 1, source, flags, ...(reviewed !== undefined ? { reviewed } : {}) });
  };

  const visit = (node: ts.Node): void => {
    if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) {
      const literal = (node as ts.RegularExpressionLiteral).text;
      const lastSlash = literal.lastIndexOf('/');
      add(node, literal.slice(1, lastSlash), literal.slice(lastSlash + 1));
    } else if ((ts.isNewExpression(node) || ts.isCallExpression(node)) && isRegExpConstructor(node.expression)) {
      const [pattern, flags] = node.arguments ?? [];
      if (pattern && isLiteralText(pattern) && (!flags || isLiteralText(flags))) {
        add(node, pattern.text, flags && isLiteralText(flags) ? flags.text : '');
      } else if (pattern) {
        dynamic.push({ file, line: lineOf(node) + 1, text: node.getText(sourceFile) });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return { found, dynamic };
}

/** Checks one pattern with recheck. */
export async function checkRegex(source: string, flags: string): Promise<{ verdict: Verdict; detail: string }> {
  const diagnostics: Diagnostics = await check(source, flags);
  switch (diagnostics.status) {
    case 'safe':
      return { verdict: 'safe', detail: diagnostics.complexity.summary };
    case 'vulnerable':
      return { verdict: 'vulnerable', detail: `${diagnostics.complexity.summary}; attack: ${describeAttack(diagnostics.attack.pattern)}` };
    case 'unknown':
      return { verdict: 'unknown', detail: `${diagnostics.error.kind}${'message' in diagnostics.error ? `: ${diagnostics.error.message}` : ''}` };
  }
}

/** Whether a checked regex fails the check: vulnerable always; unknown unless reviewed by hand. */
export function failsCheck(regex: CheckedRegex): boolean {
  return regex.verdict === 'vulnerable' || (regex.verdict === 'unknown' && regex.reviewed === undefined);
}

async function listTypeScriptFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && /\.[cm]?[jt]sx?$/.test(entry.name) && !entry.name.endsWith('.d.ts'))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

function isRegExpConstructor(expression: ts.Expression): boolean {
  return ts.isIdentifier(expression) && expression.text === 'RegExp';
}

function isLiteralText(node: ts.Expression): node is ts.StringLiteral | ts.NoSubstitutionTemplateLiteral {
  return ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node);
}

function reviewNoteAbove(lines: string[], line: number): string | undefined {
  const above = lines[line - 1]?.trim() ?? '';
  if (!above.startsWith('//')) return undefined;
  const at = above.indexOf(REVIEW_MARK);
  if (at < 0) return undefined;
  const reason = above.slice(at + REVIEW_MARK.length).trim();
  return reason === '' ? undefined : reason;
}

function describeAttack(pattern: string): string {
  return pattern.length > 80 ? `${pattern.slice(0, 77)}...` : pattern;
}

async function main(dirs: string[]): Promise<number> {
  const checked: CheckedRegex[] = [];
  const dynamic: DynamicRegex[] = [];
  for (const dir of dirs) {
    for (const file of await listTypeScriptFiles(dir)) {
      const found = findRegexes(relative(process.cwd(), file), await readFile(file, 'utf8'));
      dynamic.push(...found.dynamic);
      for (const regex of found.found) checked.push({ ...regex, ...(await checkRegex(regex.source, regex.flags)) });
    }
  }

  for (const regex of checked) {
    const mark = regex.verdict === 'unknown' && regex.reviewed !== undefined ? ` (reviewed: ${regex.reviewed})` : '';
    console.log(`${regex.file}:${regex.line}  /${regex.source}/${regex.flags}  ${regex.verdict}: ${regex.detail}${mark}`);
  }
  for (const regex of dynamic) console.log(`${regex.file}:${regex.line}  ${regex.text}  warning: pattern is not a literal, not checked`);

  const failing = checked.filter(failsCheck);
  const count = (verdict: Verdict) => checked.filter((regex) => regex.verdict === verdict).length;
  console.log(
    `\n${checked.length} regular expressions checked: ${count('safe')} safe, ${count('vulnerable')} vulnerable, ${count('unknown')} unknown; ${dynamic.length} not literal`,
  );
  for (const regex of failing) {
    const why = regex.verdict === 'vulnerable' ? 'vulnerable' : `unknown and not reviewed (add "// ${REVIEW_MARK} <reason>" on the line above once checked by hand)`;
    console.error(`FAIL ${regex.file}:${regex.line} /${regex.source}/${regex.flags}: ${why}`);
  }
  return failing.length === 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const dirs = process.argv.slice(2);
  process.exitCode = await main(dirs.length ? dirs : ['src']);
}
