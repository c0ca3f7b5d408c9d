// Nix's wire format: little-endian u64s and length-prefixed, zero-padded strings; a streaming reader.
import { LimitError, MalformedError } from './errors.js';

const ZEROS = new Uint8Array(8);

/** Encodes a non-negative integer as a little-endian u64. */
export function u64(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  return out;
}

/** Padding needed after `len` bytes to reach a multiple of 8. */
export function padLength(len: number): number {
  return (8 - (len % 8)) % 8;
}

/** Bytes of a string, UTF-8 when given as a JS string. */
export function toBytes(s: Uint8Array | string): Uint8Array {
  return typeof s === 'string' ? new Uint8Array(Buffer.from(s, 'utf8')) : s;
}

/** Encodes a wire string (length, bytes, zero padding) as the chunks to write. */
export function wireString(s: Uint8Array | string): Uint8Array[] {
  const b = toBytes(s);
  const pad = padLength(b.length);
  return pad === 0 ? [u64(b.length), b] : [u64(b.length), b, ZEROS.subarray(0, pad)];
}

/** Concatenates chunks into one array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * Pulls exact-length pieces from an async stream of chunks, tracking the absolute offset so every
 * error names where it happened. Never allocates more than the caller's limit for one read.
 */
export class ByteReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private head = 0; // read position inside chunks[0]
  private done = false;
  /** Absolute offset of the next byte to be read. */
  offset = 0;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    private readonly what: string,
  ) {}

  /** Wraps any async iterable of chunks (a Readable stream, a generator). */
  static from(source: AsyncIterable<Uint8Array>, what: string): ByteReader {
    return new ByteReader(source[Symbol.asyncIterator](), what);
  }

  /** Error naming the current offset. */
  error(detail: string, at = this.offset): MalformedError {
    return new MalformedError(this.what, at, detail);
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n) {
      if (this.done) return false;
      const r = await this.source.next();
      if (r.done === true) {
        this.done = true;
        return false;
      }
      if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.buffered += r.value.length;
      }
    }
    return true;
  }

  /** True when the stream has no more bytes. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** Reads exactly `n` bytes (the caller bounds `n`). */
  async readExact(n: number): Promise<Uint8Array> {
    if (!(await this.fill(n))) throw this.error(`unexpected end of input (wanted ${n} more bytes)`);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.consume(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      if (c === undefined) throw this.error('internal: buffer underrun');
      const take = Math.min(n - filled, c.length - this.head);
      out.set(c.subarray(this.head, this.head + take), filled);
      filled += take;
      this.consume(take);
    }
    return out;
  }

  private consume(n: number): void {
    this.offset += n;
    this.buffered -= n;
    this.head += n;
    while (this.chunks.length > 0 && this.head >= (this.chunks[0]?.length ?? 0)) {
      this.head -= this.chunks[0]?.length ?? 0;
      this.chunks.shift();
    }
  }

  /** Passes the next `n` bytes to `sink` chunk by chunk, without holding them all. */
  async stream(n: number, sink: (chunk: Uint8Array) => void): Promise<void> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill(1))) throw this.error(`unexpected end of input (wanted ${left} more bytes)`);
      const c = this.chunks[0];
      if (c === undefined) throw this.error('internal: buffer underrun');
      const take = Math.min(left, c.length - this.head);
      sink(c.subarray(this.head, this.head + take));
      this.consume(take);
      left -= take;
    }
  }

  /** Reads a u64; refuses values above `max` (default 2^53-1) before anything is allocated. */
  async readU64(max = Number.MAX_SAFE_INTEGER): Promise<number> {
    const at = this.offset;
    const b = await this.readExact(8);
    const v = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    if (v > BigInt(max))
      throw new LimitError(`${this.what}: value ${v} exceeds the limit ${max} at byte offset ${at}`);
    return Number(v);
  }

  /** Reads zero padding after a string of `len` bytes; non-zero padding is an error, as in Nix. */
  async readPadding(len: number): Promise<void> {
    const pad = padLength(len);
    if (pad === 0) return;
    const at = this.offset;
    const b = await this.readExact(pad);
    if (b.some((x) => x !== 0)) throw this.error('non-zero padding', at);
  }

  /** Reads a wire string of at most `max` bytes. */
  async readBytes(max: number): Promise<Uint8Array> {
    const len = await this.readU64(max);
    const b = len === 0 ? new Uint8Array(0) : await this.readExact(len);
    await this.readPadding(len);
    return b;
  }

  /** Reads a wire string as UTF-8 text (for tokens and paths, which are ASCII). */
  async readString(max: number): Promise<string> {
    return Buffer.from(await this.readBytes(max)).toString('utf8');
  }

  /** Reads a wire string and requires it to equal `expected`. */
  async expectString(expected: string): Promise<void> {
    const at = this.offset;
    const got = await this.readString(Math.max(expected.length, 64));
    if (got !== expected) throw this.error(`expected '${expected}', got '${got.slice(0, 64)}'`, at);
  }
}
