// Per-host log prefixes: whole lines of a host's output, each led by `[NAME] `, so the output of
// hosts deployed in parallel stays readable when interleaved.
import { lineSplitter } from '../../core/lines.js';

/** A sink that prefixes each line it is given (bytes pass through; a partial line waits). */
export interface LinePrefixer {
  write(chunk: Uint8Array | string): void;
  /** Writes a pending partial line (with a newline). */
  flush(): void;
}

const NEWLINE = Buffer.from('\n');

/**
 * Lines of `write`'s chunks, each prefixed; an empty prefix passes chunks through unchanged. A
 * line longer than the core's line splitter holds is written as it comes, in pieces, each on a
 * line of its own with the prefix: a host printing one endless line is not held in memory.
 */
export function linePrefixer(prefix: string, out: (chunk: Uint8Array | string) => void): LinePrefixer {
  if (prefix === '') return { write: (c) => out(c), flush: () => undefined };
  const head = Buffer.from(prefix, 'utf8');
  const lines = lineSplitter((bytes) =>
    out(Buffer.concat(bytes[bytes.length - 1] === 0x0a ? [head, bytes] : [head, bytes, NEWLINE])),
  );
  return {
    write: (chunk) => lines.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk),
    flush: () => lines.end(),
  };
}
