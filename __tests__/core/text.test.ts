// Escaping text from a bundle for terminals and GitHub Markdown: no control sequence, bidi override or Markdown gets through.
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { anyString } from '../support/code-points.js';
import { workflowCommands } from '../support/workflow-commands.js';
import {
  escapeHtml,
  escapeMarkdown,
  escapeTerminal,
  groupDigits,
  logLine,
  markdownCode,
  unsafeCharacter,
} from '../../src/core/text.js';

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

describe('escapeTerminal', () => {
  test('makes ESC, CR, OSC, C1 and bidi controls visible', () => {
    expect(escapeTerminal('\x1b[2K\rOK: verified\n')).toBe('\\e[2K\\rOK: verified\\n');
    expect(escapeTerminal('\x1b]8;;https://evil\x07x')).toBe('\\e]8;;https://evil\\x07x');
    expect(escapeTerminal('a\u009bb\u009dc')).toBe('a\\x9bb\\x9dc');
    expect(escapeTerminal('exe.\u202etxt')).toBe('exe.\\u{202e}txt');
    expect(escapeTerminal('a\ud800b')).toBe('a\\u{d800}b');
    expect(escapeTerminal('Zoë ✓ 日本 🚀')).toBe('Zoë ✓ 日本 🚀');
  });
  test('multiline keeps newlines and tabs, never a carriage return', () => {
    expect(escapeTerminal('a\n\tb\r\x1bc', { multiline: true })).toBe('a\n\tb\\r\\ec');
  });
  test('no string escapes to anything holding a raw control (property)', () => {
    fc.assert(
      fc.property(anyString(), (s) => {
        expect(RAW_CONTROL.test(escapeTerminal(s))).toBe(false);
        expect(/[\r\n]/.test(escapeTerminal(s))).toBe(false);
        expect(unsafeCharacter(escapeTerminal(s))).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
  });
  test('unsafeCharacter names the first one', () => {
    expect(unsafeCharacter('ab\u202ec')).toEqual({ index: 2, codePoint: 'U+202E' });
    expect(unsafeCharacter('fine')).toBeUndefined();
  });
});

describe('logLine: a message in the job log issues no workflow command', () => {
  const hostile = [
    '::error::forged',
    'a tail of stderr\n::add-mask::secret',
    'x\r::stop-commands::pwned',
    'x\r\n  \t::save-state name=k::v',
    '\u00a0\u3000::endgroup::',
    'plan ##[error]forged annotation',
    'label ##[set-output name=result;]{"ok":true}',
    '###[group]nested',
    '::group::a\n##[add-matcher]m.json\n\u0085::warning::w',
  ];

  test.each(hostile)('%j', (message) => {
    // Without it, the runner takes each for a command; with it, for text.
    expect(workflowCommands(message)).not.toEqual([]);
    const line = logLine(message);
    expect(workflowCommands(line)).toEqual([]);
    expect(line).not.toMatch(RAW_CONTROL);
  });

  test('shows what it escapes: a backslash before a leading ::, ##\\[ for ##[, control characters named', () => {
    expect(logLine('first\n  ::error::x')).toBe('first\n  \\::error::x');
    expect(logLine('a ##[error]b ###[c')).toBe('a ##\\[error]b ###\\[c');
    expect(logLine('\x1b[31mred\r::x::')).toBe('\\e[31mred\\r::x::');
    expect(logLine('plain: a::b, [c] #d')).toBe('plain: a::b, [c] #d');
  });

  test('no string becomes a command', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.constantFrom(':', '#', '[', ']', 'error', 'x', ' ', '\t', '\n', '\r', '\u00a0', '\u0085'),
          {
            maxLength: 24,
          },
        ),
        (parts) => {
          expect(workflowCommands(logLine(parts.join('')))).toEqual([]);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('Markdown', () => {
  test('markdownCode fences past any backtick run and keeps the text', () => {
    expect(markdownCode('hello')).toBe('`hello`');
    expect(markdownCode('a`b')).toBe('``a`b``');
    expect(markdownCode('``x')).toBe('``` ``x ```');
    expect(markdownCode('<img src=x onerror=alert(1)>')).toBe('`<img src=x onerror=alert(1)>`');
    expect(markdownCode('a\nb')).toBe('`a\\nb`');
    expect(markdownCode('')).toBe('<code></code>');
  });
  test('escapeMarkdown escapes every ASCII punctuation character', () => {
    expect(escapeMarkdown('[OK](https://x) *b* <b>&amp;</b> #1 @me :+1:')).toBe(
      '\\[OK\\]\\(https\\:\\/\\/x\\) \\*b\\* \\<b\\>\\&amp\\;\\<\\/b\\> \\#1 \\@me \\:\\+1\\:',
    );
  });
  test('escapeHtml', () => {
    expect(escapeHtml('<a href="x">\'&')).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;');
  });
});

describe('groupDigits', () => {
  test("writes what toLocaleString('en-US') writes", () => {
    for (const n of [0, 1, 12, 999, 1000, 12_345, 123_456, 1_000_000, 9_007_199_254_740_991])
      expect(groupDigits(n)).toBe(n.toLocaleString('en-US'));
    for (const n of [-0, -1, -12_345, 1.5, 1234.5678, 1e21, NaN, Infinity])
      expect(groupDigits(n)).toBe(n.toLocaleString('en-US'));
    fc.assert(
      fc.property(fc.oneof(fc.nat(), fc.integer(), fc.double()), (n) => {
        expect(groupDigits(n)).toBe(n.toLocaleString('en-US'));
      }),
      { numRuns: 2000 },
    );
  });
});
