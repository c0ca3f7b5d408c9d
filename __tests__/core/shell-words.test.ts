// Shell-style words: split as /bin/sh splits them (checked against the real sh), and quoted back.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { formatCommandLine, quoteShellWord, splitShellWords } from '../../src/core/shell-words.js';

/** The words /bin/sh makes of `text` as the arguments of a command. */
function shWords(text: string): string[] {
  const r = spawnSync('/bin/sh', ['-c', `for a in ${text}; do printf '%s\\0' "$a"; done`], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout === '' ? [] : r.stdout.slice(0, -1).split('\0');
}

describe('splitShellWords', () => {
  test.each([
    ['--option extra-substituters "a b"', ['--option', 'extra-substituters', 'a b']],
    [
      "--max-jobs 4  --keep-going\n--option x 'y z'",
      ['--max-jobs', '4', '--keep-going', '--option', 'x', 'y z'],
    ],
    ['a\\ b "c\\"d" \'e\\f\'', ['a b', 'c"d', 'e\\f']],
    ['"" \'\' x', ['', '', 'x']],
    ['a"b"\'c\'d', ['abcd']],
    ['$HOME ~ *.nix #x', ['$HOME', '~', '*.nix', '#x']],
    ['', []],
    ['   ', []],
  ])('%j', (text, words) => {
    expect(splitShellWords(text)).toEqual(words);
  });

  test('an open quote or a trailing backslash is a usage error naming what was split', () => {
    expect(() => splitShellWords('--option x "a b', 'input "nix-args"')).toThrow(
      /input "nix-args": a " quote is not closed/,
    );
    expect(() => splitShellWords("'a")).toThrow(/a ' quote is not closed/);
    expect(() => splitShellWords('a\\')).toThrow(/backslash ends/);
    try {
      splitShellWords('"');
    } catch (e) {
      expect(e).toMatchObject({ code: 'usage' });
    }
  });

  // A newline outside quotes ends a shell command; here it separates words like a space (an
  // action input spans lines), so the comparison leaves newlines to the table above.
  test('splits as /bin/sh does (without expansions)', () => {
    const chars = fc.constantFrom('a', 'b', ' ', ' ', '\t', '"', "'", '\\', '-', '=', '.', '/', ':');
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 24 }), (cs) => {
        const text = cs.join('');
        let ours: string[] | undefined;
        try {
          ours = splitShellWords(text);
        } catch {
          ours = undefined;
        }
        let theirs: string[] | undefined;
        try {
          theirs = shWords(text);
        } catch {
          theirs = undefined;
        }
        expect(ours).toEqual(theirs);
      }),
      { numRuns: 100 },
    );
  });
});

describe('quoting', () => {
  test('safe words stay as they are, others are single-quoted', () => {
    expect(quoteShellWord('--max-jobs')).toBe('--max-jobs');
    expect(quoteShellWord('/nix/store/abc-x.drv')).toBe('/nix/store/abc-x.drv');
    expect(quoteShellWord('a b')).toBe("'a b'");
    expect(quoteShellWord("it's")).toBe("'it'\\''s'");
    expect(quoteShellWord('')).toBe("''");
    expect(formatCommandLine('nix', ['--option', 'substituters', 'a b'])).toBe(
      "nix --option substituters 'a b'",
    );
  });

  test('a quoted command line splits back to the same words, also in /bin/sh', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 8 }), { maxLength: 5 }), (words) => {
        const clean = words.map((w) => w.replace(/\0/g, ''));
        const line = formatCommandLine('x', clean);
        expect(splitShellWords(line)).toEqual(['x', ...clean]);
        expect(shWords(line)).toEqual(['x', ...clean]);
      }),
      { numRuns: 40 },
    );
  });
});
