// Keeping a job summary under GitHub's limit: a summary that would still be too big after the
// list limits is cut at a line end, what it leaves open closed, and the cut said honestly (how
// much, which sections, where to read all of it).
import { formatBytes } from '../app/display.js';

/** GitHub refuses step summaries above 1 MiB; ours stay within half of it. */
export const SUMMARY_BUDGET = 512 * 1024;

/** The first `bytes` bytes of `text` at most, cut at a character boundary. */
function prefixWithin(text: string, bytes: number): string {
  // A partial UTF-8 sequence at the end decodes to one U+FFFD, dropped with it.
  const kept = Buffer.from(text)
    .subarray(0, Math.max(0, bytes))
    .toString('utf8')
    .replace(/\uFFFD$/, '');
  return text.slice(0, kept.length);
}

/** Headings of the sections a cut summary leaves out, as they would have read (our own Markdown). */
const HEADING = /^#{2,4} (.+)$/gm;
const HEADINGS_NAMED = 8;

/**
 * Cuts a summary that would still exceed the budget (it should not after the list limits) and
 * says so honestly: how much was left out, which sections, and where to read all of it. The cut
 * falls at the end of a line, so no table row, code span or tag is left half; a code block or a
 * collapsed block (`<details>`) left open is closed.
 */
export function capSummary(markdown: string, budget = SUMMARY_BUDGET): string {
  const total = Buffer.byteLength(markdown);
  if (total <= budget) return markdown;
  const noteFor = (kept: string): string => {
    const headings = [...markdown.slice(kept.length).matchAll(HEADING)]
      .map((m) => m[1] ?? '')
      .filter((h) => Buffer.byteLength(h) <= 200);
    const named =
      headings.length === 0
        ? ''
        : `, including the section${headings.length === 1 ? '' : 's'} ${headings
            .slice(0, HEADINGS_NAMED)
            .map((h) => `“${h}”`)
            .join(
              ', ',
            )}${headings.length > HEADINGS_NAMED ? ` and ${headings.length - HEADINGS_NAMED} more` : ''}`;
    return (
      `\n> [!NOTE]\n> **This summary was cut** to stay under GitHub’s 1 MiB limit for a step summary: ` +
      `the last ${formatBytes(total - Buffer.byteLength(kept))} of ${formatBytes(total)} are not shown${named}. ` +
      'The plan holds all of it: `nix-plan inspect --contents` and `nix-plan diff` show it in full.\n'
    );
  };
  // Room for the note and for closing what the cut leaves open.
  const reserve = Buffer.byteLength(noteFor('')) + 512;
  let kept = prefixWithin(markdown, budget - reserve);
  const lineEnd = kept.lastIndexOf('\n');
  if (lineEnd >= 0) kept = kept.slice(0, lineEnd + 1);
  const closers: string[] = lineEnd >= 0 ? [] : [''];
  if ((kept.match(/^```/gm) ?? []).length % 2 === 1) closers.push('```');
  const open = (kept.match(/<details>/g) ?? []).length - (kept.match(/<\/details>/g) ?? []).length;
  for (let i = 0; i < Math.min(open, 16); i++) closers.push('</details>');
  const close = closers.length === 0 ? '' : `\n${closers.join('\n')}\n`;
  const out = `${kept}${close}${noteFor(kept)}`;
  // Only a pathological heading list could overrun the reserve; then the note alone is kept short.
  return Buffer.byteLength(out) <= budget ? out : `${prefixWithin(kept, budget - 200)}\n\n…summary cut.\n`;
}
