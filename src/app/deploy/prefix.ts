// Per-host log prefixes: whole lines of a host's output, each led by `[NAME] `, so the output of
// hosts deployed in parallel stays readable when interleaved.

/** A sink that prefixes each line it is given (bytes pass through; a partial line waits). */
export interface LinePrefixer {
  write(chunk: Uint8Array | string): void;
  /** Writes a pending partial line (with a newline). */
  flush(): void;
}

/** Lines of `write`'s chunks, each prefixed; an empty prefix passes chunks through unchanged. */
export function linePrefixer(prefix: string, out: (chunk: Uint8Array | string) => void): LinePrefixer {
  if (prefix === '') return { write: (c) => out(c), flush: () => undefined };
  const head = Buffer.from(prefix, 'utf8');
  let pending: Buffer[] = [];
  return {
    write(chunk) {
      let buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
        out(Buffer.concat([head, ...pending, buf.subarray(0, nl + 1)]));
        pending = [];
        buf = buf.subarray(nl + 1);
      }
      if (buf.length > 0) pending.push(buf);
    },
    flush() {
      if (pending.length === 0) return;
      out(Buffer.concat([head, ...pending, Buffer.from('\n')]));
      pending = [];
    },
  };
}
