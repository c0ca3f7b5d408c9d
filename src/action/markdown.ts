// Markdown for job summaries that a plan cannot subvert, over core/text.ts's escapes. Anything that
// came from a plan (names, labels, provenance, key names) is untrusted: it goes into a code span
// (where Markdown, HTML, @mentions and #references are not interpreted) or is escaped as plain
// text. Tables escape `|` even inside code spans (GFM splits cells before it parses spans) and
// never let a value break a line.
import { escapeMarkdown, groupDigits, markdownCode } from '../core/text.js';

/** Untrusted text as an inline code span, safe anywhere (a table cell included). */
export function codeSpan(text: string): string {
  return markdownCode(text).replace(/\|/g, '\\|');
}

/** Untrusted text as plain Markdown text: every Markdown and HTML character escaped, on one line. */
export function plainText(text: string): string {
  return escapeMarkdown(text).replace(/\r?\n/g, ' ');
}

/** A link whose text and target we made ourselves (run URLs of this repository, artifact URLs). */
export function trustedLink(label: string, url: string): string {
  return `[${label}](${url})`;
}

/** One table row of cells that are already safe Markdown. */
function row(cells: readonly string[]): string {
  return `| ${cells.map((c) => c.replace(/\r?\n/g, ' ')).join(' | ')} |`;
}

/**
 * A Markdown table of safe cells, at most `limit` rows and `budget` bytes; the rows left out are
 * counted below it ("…and 1,234 more").
 */
export function boundedTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  options: { limit?: number; budget?: number; more?: string } = {},
): string {
  const limit = options.limit ?? Infinity;
  let budget = options.budget ?? Infinity;
  const lines = [row(headers), `|${headers.map(() => ' --- |').join('')}`];
  let shown = 0;
  for (const r of rows) {
    if (shown >= limit) break;
    const line = row(r);
    const size = Buffer.byteLength(line) + 1;
    if (size > budget) break;
    budget -= size;
    lines.push(line);
    shown++;
  }
  if (shown < rows.length)
    lines.push(
      '',
      `…and ${groupDigits(rows.length - shown)} more${options.more === undefined ? '.' : ` ${options.more}`}`,
    );
  return `${lines.join('\n')}\n`;
}

/** A collapsed block (`<details>`); the body is Markdown, so blank lines surround it. */
export function details(summary: string, body: string): string {
  return `<details><summary>${summary}</summary>\n\n${body}\n</details>\n`;
}
