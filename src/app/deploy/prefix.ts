// Per-host log prefixes: whole lines of a host's output, each led by `[NAME] `, so the output of
// hosts deployed in parallel stays readable when interleaved. What follows a prefix cannot hide
// it or pass for another host's line: a bare `\r` starts a new prefixed line (instead of sending
// the cursor back over the prefix), and every other control character (an escape sequence that
// moves the cursor or clears the line, a bidi override) is made visible as escapeTerminal does.
import { lineSplitter } from '../../core/lines.js';
import { escapeTerminal } from '../../core/text.js';

/** A sink that prefixes each line it is given (bytes pass through; a partial line waits). */
export interface LinePrefixer {
  write(chunk: Uint8Array | string): void;
  /** Writes a pending partial line (with a newline). */
  flush(): void;
}

const NEWLINE = Buffer.from('\n');

/**
 * A message of ours about one host, each of its lines led by `prefix`: a message may quote what
 * the host sent (the tail of its standard error, an error it reported), and a line of that
 * without the prefix could pass for another host's, or for nix-plan's own. Control characters
 * are left to the logger, which escapes them (a `\r` included).
 */
export function prefixLines(prefix: string, message: string): string {
  return prefix === '' ? message : `${prefix}${message.split('\n').join(`\n${prefix}`)}`;
}

/**
 * Lines of `write`'s chunks, each prefixed and made safe to show after it (see the module
 * comment); an empty prefix (one host) passes chunks through unchanged, as the host printed them.
 * A line longer than the core's line splitter holds is written as it comes, in pieces, each on a
 * line of its own with the prefix: a host printing one endless line is not held in memory.
 */
export function linePrefixer(prefix: string, out: (chunk: Uint8Array | string) => void): LinePrefixer {
  if (prefix === '') return { write: (c) => out(c), flush: () => undefined };
  const head = Buffer.from(prefix, 'utf8');
  const lines = lineSplitter((bytes) => {
    for (const text of shownLines(bytes)) out(Buffer.concat([head, Buffer.from(text, 'utf8'), NEWLINE]));
  });
  return {
    write: (chunk) => lines.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk),
    flush: () => lines.end(),
  };
}

/**
 * What one line of a host's output (or a piece of one, with or without its line end) shows after
 * the prefix: one line per stretch between bare `\r`s (a `\r\n` ends the line like `\n`), empty
 * stretches left out, each with its control characters escaped. The line splitter cuts no piece
 * inside a UTF-8 sequence, so decoding a piece alone reads what the host wrote.
 */
function shownLines(line: Uint8Array): string[] {
  let end = line.length;
  if (line[end - 1] === 0x0a) {
    end -= 1;
    if (line[end - 1] === 0x0d) end -= 1;
  }
  const stretches = Buffer.from(line.buffer, line.byteOffset, end)
    .toString('utf8')
    .split('\r')
    .filter((s) => s !== '');
  return stretches.length === 0 ? [''] : stretches.map((s) => escapeTerminal(s, { multiline: true }));
}
