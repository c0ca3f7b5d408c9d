// A streaming reader of Nix's wire format (little-endian u64s and length-prefixed, zero-padded
// strings; their encoding and the byte helpers are in bytes.ts).
import { LimitError, MalformedError } from './errors.js';
import { padLength } from './bytes.js';

const TWO_POW_32 = 2 ** 32;

/** Receives bytes a ByteReader has consumed, in order (see `ByteReader.tap`). */
export type ByteTap = (chunk: Uint8Array) => void;

const MAX_HI = 2 ** 21; // hi word >= 2^21 means the u64 is above 2^53

/**
 * Pulls exact-length pieces from an async stream of chunks, tracking the absolute offset so every
 * error names where it happened. Never allocates more than the caller's limit for one read.
 *
 * Built for streams of hundreds of megabytes: reads that fit in the current chunk are views (no
 * copy), consumed chunks are dropped by advancing an index (no array shifting), and taps see the
 * consumed bytes as a few large views rather than one call per token.
 */
export class ByteReader {
  private chunks: Uint8Array[] = [];
  private first = 0; // index of the current chunk in `chunks`
  private buffered = 0;
  private head = 0; // read position inside the current chunk
  private done = false;
  private received = 0;
  private taps: ByteTap[] = [];
  private tapFrom = 0; // start of the not-yet-tapped bytes inside the current chunk
  /** Absolute offset of the next byte to be read. */
  offset = 0;

  /**
   * @param source the chunks to read
   * @param what names the format in errors ("NAR", "export stream")
   * @param maxBytes refuse (LimitError) a source longer than this many bytes
   */
  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    private readonly what: string,
    private readonly maxBytes = Number.MAX_SAFE_INTEGER,
  ) {}

  /** Wraps any iterable of chunks (a Readable stream, a generator, an array of buffers). */
  static from(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    what: string,
    maxBytes?: number,
  ): ByteReader {
    const it =
      Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : fromSync(source[Symbol.iterator]());
    return new ByteReader(it, what, maxBytes);
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
      const chunk = r.value;
      if (chunk.length > 0) {
        this.received += chunk.length;
        if (this.received > this.maxBytes)
          throw new LimitError(`${this.what}: input is larger than the limit of ${this.maxBytes} bytes`);
        this.chunks.push(chunk);
        this.buffered += chunk.length;
      }
    }
    return true;
  }

  /** True when the stream has no more bytes. */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  /** Reads exactly `n` bytes (the caller bounds `n`). A view into the source's chunk when possible. */
  async readExact(n: number): Promise<Uint8Array> {
    if (!(await this.fill(n))) throw this.error(`unexpected end of input (wanted ${n} more bytes)`);
    const c = this.chunks[this.first];
    if (c !== undefined && c.length - this.head >= n) {
      const out = c.subarray(this.head, this.head + n);
      this.consume(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const cur = this.chunks[this.first];
      if (cur === undefined) throw this.error('internal: buffer underrun');
      const take = Math.min(n - filled, cur.length - this.head);
      out.set(cur.subarray(this.head, this.head + take), filled);
      filled += take;
      this.consume(take);
    }
    return out;
  }

  // Fast paths that need no await. Parsers call them first and fall back to the waiting reads
  // (`x ?? (await slow())`): an await costs a trip through the microtask queue even for bytes
  // already buffered, and a stream of small drvs is mostly small fields. Each consumes nothing
  // and returns undefined unless all it needs is in the current chunk and well formed; the
  // waiting read then reads the same bytes again and reports any problem.

  /**
   * The unread bytes of the current chunk, consuming nothing: for a parser that looks at a whole
   * structure before it reads it (`tryReadExact` then consumes what it took).
   */
  peekBuffered(): Uint8Array {
    const c = this.chunks[this.first];
    return c === undefined ? EMPTY : c.subarray(this.head);
  }

  /** Like readExact, when the `n` bytes are in the current chunk. */
  tryReadExact(n: number): Uint8Array | undefined {
    const c = this.chunks[this.first];
    if (c === undefined || c.length - this.head < n) return undefined;
    const out = c.subarray(this.head, this.head + n);
    this.consume(n);
    return out;
  }

  /** Like readU64Unbounded, for a value below 2^32 in the current chunk. */
  tryReadSmallU64(): number | undefined {
    const c = this.chunks[this.first];
    const h = this.head;
    if (c === undefined || c.length - h < 8) return undefined;
    if ((c[h + 4]! | c[h + 5]! | c[h + 6]! | c[h + 7]!) !== 0) return undefined;
    const v = (c[h]! | (c[h + 1]! << 8) | (c[h + 2]! << 16) | (c[h + 3]! << 24)) >>> 0;
    this.consume(8);
    return v;
  }

  /**
   * A wire string (u64 length, bytes, zero padding) of at most `max` bytes, as a view, when all
   * of it is in the current chunk.
   */
  tryReadWireBytes(max: number): Uint8Array | undefined {
    const c = this.tryReadWireSpan(max);
    return c === undefined ? undefined : c.subarray(this.spanStart, this.spanEnd);
  }

  /** Where the wire string `tryReadWireSpan` last found is: [spanStart, spanEnd) of the chunk it returned. */
  spanStart = 0;
  spanEnd = 0;

  /**
   * `tryReadWireBytes` without a view: returns the chunk the string is in (undefined when it is
   * not all there) and leaves where in `spanStart` and `spanEnd`. For the many short strings a
   * caller only compares or decodes (the store paths of an export stream).
   */
  tryReadWireSpan(max: number): Uint8Array | undefined {
    const c = this.chunks[this.first];
    const h = this.head;
    if (c === undefined || c.length - h < 8) return undefined;
    if ((c[h + 4]! | c[h + 5]! | c[h + 6]! | c[h + 7]!) !== 0) return undefined;
    const len = (c[h]! | (c[h + 1]! << 8) | (c[h + 2]! << 16) | (c[h + 3]! << 24)) >>> 0;
    if (len > max) return undefined;
    const end = h + 8 + len + padLength(len);
    if (end > c.length) return undefined;
    for (let i = h + 8 + len; i < end; i++) if (c[i] !== 0) return undefined;
    this.spanStart = h + 8;
    this.spanEnd = h + 8 + len;
    this.consume(end - h);
    return c;
  }

  /** Like readPadding: true once the padding after `len` bytes was read (it is in the current chunk and zero). */
  tryReadPadding(len: number): boolean {
    const pad = padLength(len);
    if (pad === 0) return true;
    const c = this.chunks[this.first];
    const h = this.head;
    if (c === undefined || c.length - h < pad) return false;
    for (let i = h; i < h + pad; i++) if (c[i] !== 0) return false;
    this.consume(pad);
    return true;
  }

  /** Advances by `n` bytes, all inside the current chunk; drops the chunk once it is used up. */
  private consume(n: number): void {
    this.offset += n;
    this.buffered -= n;
    this.head += n;
    const c = this.chunks[this.first];
    if (c !== undefined && this.head >= c.length) {
      if (this.taps.length > 0 && this.tapFrom < c.length) this.emit(c.subarray(this.tapFrom));
      this.chunks[this.first] = EMPTY; // let it be collected
      this.first++;
      this.head = 0;
      this.tapFrom = 0;
      if (this.first === this.chunks.length) {
        this.chunks = [];
        this.first = 0;
      } else if (this.first >= 1024) {
        this.chunks = this.chunks.slice(this.first);
        this.first = 0;
      }
    }
  }

  private emit(view: Uint8Array): void {
    for (const t of this.taps) t(view);
  }

  /** Hands the consumed but not yet tapped bytes to the taps. */
  private flushTaps(): void {
    const c = this.chunks[this.first];
    if (this.taps.length > 0 && c !== undefined && this.head > this.tapFrom)
      this.emit(c.subarray(this.tapFrom, this.head));
    this.tapFrom = this.head;
  }

  /**
   * Sees every byte consumed from now on, in order, as views of the source's chunks (batched: call
   * the returned function to flush and detach; pass `flush = false` to detach without delivering
   * the pending bytes, e.g. after an error).
   */
  tap(fn: ByteTap): (flush?: boolean) => void {
    this.flushTaps();
    this.taps.push(fn);
    return (flush = true) => {
      const remove = (): void => {
        const i = this.taps.indexOf(fn);
        if (i >= 0) this.taps.splice(i, 1);
      };
      // Without flushing, the pending bytes still go to the other taps (an enclosing reader's).
      if (flush) this.flushTaps();
      remove();
      if (!flush) this.flushTaps();
    };
  }

  /** Passes the next `n` bytes to `sink` chunk by chunk, without holding them all. */
  async stream(n: number, sink: (chunk: Uint8Array) => void): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1)))
        throw this.error(`unexpected end of input (wanted ${left} more bytes)`);
      const c = this.chunks[this.first];
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
    const v = await this.readU64Unbounded();
    if (v > max) {
      const shown = v === Infinity ? 'above 2^53' : String(v);
      throw new LimitError(`${this.what}: value ${shown} exceeds the limit ${max} at byte offset ${at}`);
    }
    return v;
  }

  /**
   * Reads a u64 without judging it: values above 2^53-1 come back as Infinity, so a caller can
   * raise the error that fits (a format error for a marker, a limit error for a length).
   */
  async readU64Unbounded(): Promise<number> {
    const b = await this.readExact(8);
    const lo = (b[0] ?? 0) | ((b[1] ?? 0) << 8) | ((b[2] ?? 0) << 16) | ((b[3] ?? 0) << 24);
    const hi = ((b[4] ?? 0) | ((b[5] ?? 0) << 8) | ((b[6] ?? 0) << 16) | ((b[7] ?? 0) << 24)) >>> 0;
    return hi >= MAX_HI ? Infinity : hi * TWO_POW_32 + (lo >>> 0);
  }

  /** Reads zero padding after a string of `len` bytes; non-zero padding is an error, as in Nix. */
  async readPadding(len: number): Promise<void> {
    const pad = padLength(len);
    if (pad === 0) return;
    const at = this.offset;
    const b = await this.readExact(pad);
    for (let i = 0; i < pad; i++) if (b[i] !== 0) throw this.error('non-zero padding', at);
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
    const b = await this.readBytes(max);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  }

  /** Reads a wire string and requires it to equal `expected`. */
  async expectString(expected: string): Promise<void> {
    const at = this.offset;
    const got = await this.readString(Math.max(expected.length, 64));
    if (got !== expected) throw this.error(`expected '${expected}', got '${got.slice(0, 64)}'`, at);
  }
}

const EMPTY = new Uint8Array(0);

function fromSync(it: Iterator<Uint8Array>): AsyncIterator<Uint8Array> {
  return { next: (): Promise<IteratorResult<Uint8Array>> => Promise.resolve(it.next()) };
}
