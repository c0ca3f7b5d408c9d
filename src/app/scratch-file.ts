// A scratch file: bytes appended and read back by offset, synchronously (relocation is), so that
// what a large closure needs later is held by the page cache instead of the process.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { NixPlanError } from '../core/errors.js';

/** How much of the file one read brings in, for the reads that come next. */
const WINDOW = 1024 * 1024;

/**
 * Bytes appended to a file and read back by offset, synchronously (relocation is): what is
 * appended is gathered in a buffer and written in large pieces. Relocation reads the objects
 * about in the order they were appended (indexing them, then relocating them), so a read that
 * goes on from the last one brings in the next `WINDOW` bytes at once and hands out views of
 * them; a read elsewhere (an object relocated early, for another that mentions it) reads just its
 * bytes.
 */
export class ScratchFile {
  private readonly fd: number;
  private readonly pending = Buffer.allocUnsafeSlow(1024 * 1024);
  private used = 0;
  private written = 0;
  /** The bytes last read ahead, from offset `windowAt` (a new buffer each time: views are handed out). */
  private window: Uint8Array = new Uint8Array(0);
  private windowAt = 0;
  /** Where the last read ended: a read from there on is sequential. */
  private lastEnd = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'wx+', 0o600);
  }

  /** Appends `bytes` (copied); returns what reads them back. */
  append(bytes: Uint8Array): () => Uint8Array {
    const length = bytes.length;
    if (this.used + length > this.pending.length) this.flush();
    const at = this.written + this.used;
    if (length > this.pending.length) this.writeAll(bytes);
    else {
      this.pending.set(bytes, this.used);
      this.used += length;
    }
    return () => this.read(at, length);
  }

  private read(at: number, length: number): Uint8Array {
    if (at + length > this.written) this.flush();
    const sequential = at >= this.lastEnd && at - this.lastEnd < WINDOW;
    this.lastEnd = at + length;
    const from = at - this.windowAt;
    if (from >= 0 && from + length <= this.window.length) return this.window.subarray(from, from + length);
    if (!sequential || length > WINDOW) return this.readAt(at, length);
    this.window = this.readAt(at, Math.min(WINDOW, this.written - at));
    this.windowAt = at;
    return this.window.subarray(0, length);
  }

  private readAt(at: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, at + done);
      if (n === 0) throw new NixPlanError('internal', `the scratch file ended at ${at + done} bytes`);
      done += n;
    }
    return out;
  }

  private flush(): void {
    this.writeAll(this.pending.subarray(0, this.used));
    this.used = 0;
  }

  private writeAll(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length)
      done += writeSync(this.fd, bytes, done, bytes.length - done, this.written + done);
    this.written += bytes.length;
  }

  /** Closes the file (removing it is the caller's). */
  close(): void {
    closeSync(this.fd);
  }
}
