// Text a stranger wrote, shown to a person: which characters a manifest refuses, and how anything
// from a bundle is escaped for a terminal and for GitHub's Markdown.
//
// One definition of "unsafe" serves both sides: the manifest refuses these characters in every
// string (tool, labels, provenance, warnings), and the display escapes them wherever a string came
// from a bundle anyway (store paths, key names, error messages), so a bundle cannot move the
// cursor, rewrite a line with a carriage return, open an OSC sequence (titles, hyperlinks,
// clipboard), reorder what follows with a bidi override, or print a line that looks like ours.

/**
 * Characters no string from a bundle may carry: C0 controls (with tab and newline), DEL, C1
 * controls (U+0080–U+009F: a terminal in UTF-8 mode may take U+009B as CSI), the bidi embeddings,
 * overrides, isolates and marks (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), the
 * line and paragraph separators (U+2028, U+2029), and UTF-16 surrogates that are not a pair.
 */
const UNSAFE =
  // eslint-disable-next-line no-control-regex
  /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** The same set without the global flag (`exec` from the start, no `lastIndex` state). */
const UNSAFE_ONE = new RegExp(UNSAFE.source);

/** The first unsafe character of `text` as `U+XXXX` and its index, or undefined when there is none. */
export function unsafeCharacter(text: string): { index: number; codePoint: string } | undefined {
  const m = UNSAFE_ONE.exec(text);
  if (m === null) return undefined;
  return { index: m.index, codePoint: codePointName(m[0]) };
}

function codePointName(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** How an unsafe character is shown: `\e` style names for the common ones, else `\u{XXXX}`. */
function visible(ch: string): string {
  switch (ch) {
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    case '\t':
      return '\\t';
    case '\x1b':
      return '\\e';
    default: {
      const cp = ch.codePointAt(0) ?? 0;
      return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
    }
  }
}

/**
 * `text` with every unsafe character replaced by a visible escape (`\e`, `\r`, `\x9b`,
 * `\u{202e}`), for a terminal. With `multiline`, newlines and tabs are kept (for messages that
 * quote a Nix command's output); a carriage return is escaped either way, as it would let the
 * rest of a line overwrite its start.
 */
export function escapeTerminal(text: string, options: { multiline?: boolean } = {}): string {
  const keep = options.multiline === true;
  return text.replace(UNSAFE, (ch) => (keep && (ch === '\n' || ch === '\t') ? ch : visible(ch)));
}

/**
 * A Markdown code span holding `text` exactly (after `escapeTerminal`): GitHub renders nothing
 * inside one as Markdown or HTML, and neither links mentions nor turns `:name:` into an emoji
 * there, so anything from a bundle is shown this way. The fence is longer than any run of
 * backticks in the text, as CommonMark requires. Inside a table cell, pass the result through
 * the table's cell escaping (a `|` must be `\|` even in a code span).
 */
export function markdownCode(text: string): string {
  const safe = escapeTerminal(text);
  let longest = 0;
  for (const run of safe.match(/`+/g) ?? []) longest = Math.max(longest, run.length);
  const fence = '`'.repeat(longest + 1);
  const pad = safe.startsWith('`') || safe.endsWith('`') || /^ .* $/.test(safe) ? ' ' : '';
  return safe === '' ? '<code></code>' : `${fence}${pad}${safe}${pad}${fence}`;
}

/**
 * `text` as literal Markdown prose: every ASCII punctuation character backslash-escaped (so no
 * emphasis, link, image, heading, HTML tag or entity can start) and unsafe characters made
 * visible. Prefer `markdownCode` for anything from a bundle: GitHub still turns `:name:` into an
 * emoji and `@name` into a mention outside code.
 */
export function escapeMarkdown(text: string): string {
  return escapeTerminal(text).replace(/[!-/:-@[-`{-~]/g, (ch) => `\\${ch}`);
}

/** `text` for HTML text or a double-quoted attribute. */
export function escapeHtml(text: string): string {
  return escapeTerminal(text).replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch,
  );
}

/**
 * `message` as a job log line that issues no workflow command and moves no cursor. The runner
 * reads a step's output line by line (a line ends at `\n` or `\r`) and takes a line for a
 * command when, after leading white space, it starts with `::` (`::error::…`), or when it holds
 * `##[` anywhere (the older `##[error]…` form). A message may quote a plan or a host (a label, a
 * path, an error a host sent), so: control characters are made visible as on a terminal (a `\r`
 * too; newlines stay), a line whose first visible characters are `::` gets a backslash before
 * them, and every `##[` is shown as `##\[`. Our own commands go through @actions/core, not here.
 */
export function logLine(message: string): string {
  return escapeTerminal(message, { multiline: true })
    .split('\n')
    .map((line) => line.replace(/^(\s*)::/u, '$1\\::').replace(/##\[/g, '##\\['))
    .join('\n');
}

/** `1 path`, `11,235 paths`: a count and its noun, singular for one. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${groupDigits(n)} ${n === 1 ? one : many}`;
}

/**
 * `n.toLocaleString('en-US')` (`11,235`), written here for the counts it is used for (whole
 * numbers from 0): the first `toLocaleString` of a process loads ICU's number formatting, about
 * 40 ms of every command that prints a count. Anything else goes to `toLocaleString` itself.
 */
export function groupDigits(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || Object.is(n, -0)) return n.toLocaleString('en-US');
  const digits = String(n);
  let out = digits.slice(0, ((digits.length - 1) % 3) + 1);
  for (let i = out.length; i < digits.length; i += 3) out += `,${digits.slice(i, i + 3)}`;
  return out;
}
