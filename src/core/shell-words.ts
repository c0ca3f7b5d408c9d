// Shell-style words: splitting a line of arguments as a POSIX shell would (quotes and backslashes,
// no expansion), and quoting arguments back so a printed command can be pasted into a shell.
import { NixPlanError } from './errors.js';

/**
 * Splits `text` into words the way `sh` splits a command line, without running anything:
 * whitespace separates words; '…' keeps everything literally; "…" keeps everything but lets a
 * backslash escape `"`, `\`, `$` and `` ` `` (and join lines); a backslash outside quotes takes the
 * next character literally. `$`, `~`, globs and `#` are plain characters: nothing is expanded.
 * Throws a usage error for an unterminated quote or a trailing backslash, naming `what`.
 */
export function splitShellWords(text: string, what = 'the arguments'): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw unterminated(what, "'");
      word += text.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        const d = text[j] ?? '';
        const next = text[j + 1];
        if (d === '\\' && next !== undefined && '"\\$`\n'.includes(next)) {
          if (next !== '\n') word += next;
          j++;
        } else word += d;
      }
      if (j >= text.length) throw unterminated(what, '"');
      inWord = true;
      i = j;
    } else if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) throw new NixPlanError('usage', `${what}: a backslash ends the text`);
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i++;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function unterminated(what: string, quote: string): NixPlanError {
  return new NixPlanError('usage', `${what}: a ${quote} quote is not closed`);
}

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** One argument as a shell reads it back: as it is when that is safe, else in single quotes. */
export function quoteShellWord(word: string): string {
  if (SAFE.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A command line (`cmd` and its arguments) that a shell reads back as the same argv. */
export function formatCommandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(quoteShellWord).join(' ');
}
