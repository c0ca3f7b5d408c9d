// Nix's wire format: little-endian u64s and length-prefixed, zero-padded strings; a streaming reader.
import { LimitError, MalformedError } from './errors.js';

const ZEROS = new Uint8Array(8);
const TWO_POW_32 = 2 ** 32;

/** Encodes a non-negative integer as a little-endian u64. */
export function u64(n: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) {
    // the common case, without BigInt (writers emit millions of these)
    const lo = n % TWO_POW_32;
    const hi = (n - lo) / TWO_POW_32;
    out[0] = lo & 0xff;
    out[1] = (lo >>> 8) & 0xff;
    out[2] = (lo >>> 16) & 0xff;
    out[3] = lo >>> 24;
    out[4] = hi & 0xff;
    out[5] = (hi >>> 8) & 0xff;
    out[6] = (hi >>> 16) & 0xff;
    out[7] = hi >>> 24;
    return out;
  }
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

/** Unsigned byte-wise order of two byte strings, the order Nix sorts names, keys and entries by. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  // Most comparisons (env keys, names) are of a few bytes and differ early, where a loop beats
  // the call into Buffer.compare; long equal prefixes go to the native compare.
  const n = Math.min(a.length, b.length, 32);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  if (n === 32) return Buffer.compare(a, b);
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** Concatenates chunks into one array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Many small byte arrays handed out of shared blocks: for a reader that keeps the contents of
 * thousands of objects, or a writer that makes thousands of short-lived arrays, a Uint8Array of
 * its own for each would be a backing store allocated, tracked and freed outside the JS heap per
 * object, which cost more than the bytes in it. An array pins its whole block for as long as it
 * lives: for callers that keep all of their arrays, or none, not a few of many.
 */
export class ByteArena {
  private block: Uint8Array = new Uint8Array(0);
  private at = 0;

  /**
   * @param blockSize size of each block
   * @param largest bigger arrays get memory of their own (default: a quarter of a block)
   */
  constructor(
    private readonly blockSize = 1024 * 1024,
    private readonly largest = blockSize / 4,
  ) {}

  /** `n` uninitialised bytes, for a caller that writes every one of them. */
  alloc(n: number): Uint8Array {
    if (n > this.largest) return uninitialised(n);
    if (this.at + n > this.block.length) {
      this.block = uninitialised(this.blockSize);
      this.at = 0;
    }
    const out = this.block.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  /** A copy of `bytes`. */
  copy(bytes: Uint8Array): Uint8Array {
    const out = this.alloc(bytes.length);
    out.set(bytes);
    return out;
  }
}

/** A plain Uint8Array of `n` bytes with memory of its own, not zeroed. */
function uninitialised(n: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/** The blocks `allocBytes` hands small arrays out of: 64 KiB, arrays up to 8 KiB. */
const SMALL = new ByteArena(64 * 1024, 8 * 1024);

/**
 * `n` uninitialised bytes as a plain Uint8Array, for a caller that writes every one of them.
 * Small ones are views into a shared block, so the many short-lived arrays of a rewrite or parse
 * do not each get (and zero) a backing store of their own, which costs more than filling them.
 * (Node's own pool serves only up to 4 KiB from 8 KiB blocks: a .drv's environment values are
 * often bigger.) A view keeps its whole block alive: copy what is kept long.
 */
export function allocBytes(n: number): Uint8Array {
  return SMALL.alloc(n);
}

/**
 * Gathers the many small pieces a wire writer produces (u64s, tokens, padding) into chunks of a
 * useful size, so a stream of millions of tokens is not a stream of millions of 8-byte chunks.
 * Small pieces are copied into a chunk of `target` bytes as they come (the caller may reuse what
 * it passed); large pieces pass through without a copy. Adding allocates nothing but the chunks:
 * callers write tens of thousands of entries, and arrays per call added up to tens of MB.
 */
export class ChunkBatcher {
  private chunk: Uint8Array;
  private at = 0;
  private ready: Uint8Array[] = [];

  /** @param target size of the chunks made; pieces this big pass through as they are */
  constructor(private readonly target = 64 * 1024) {
    this.chunk = new Uint8Array(target);
  }

  /** True when chunks are ready to be taken. */
  get hasReady(): boolean {
    return this.ready.length > 0;
  }

  /** The chunks ready to be written, in order, handed over (none after `flush` means no data). */
  take(): Uint8Array[] {
    const out = this.ready;
    this.ready = [];
    return out;
  }

  /** Adds one piece. */
  add(piece: Uint8Array): void {
    const n = piece.length;
    if (n >= this.target) {
      this.seal();
      this.ready.push(piece);
      return;
    }
    let from = 0;
    while (from < n) {
      const room = this.target - this.at;
      const len = Math.min(room, n - from);
      if (len <= 16) for (let k = 0; k < len; k++) this.chunk[this.at + k] = piece[from + k]!;
      else this.chunk.set(len === n ? piece : piece.subarray(from, from + len), this.at);
      this.at += len;
      from += len;
      if (this.at === this.target) this.seal();
    }
  }

  /** Adds several pieces. */
  addAll(pieces: readonly Uint8Array[]): void {
    for (const p of pieces) this.add(p);
  }

  /**
   * Room for `n` bytes the caller writes itself, in one array: returns it and the offset to write
   * at. The bytes there are not zeroed. Anything written outside [offset, offset + n) is lost.
   */
  reserve(n: number): { bytes: Uint8Array; at: number } {
    if (n > this.target) {
      this.seal();
      const own = new Uint8Array(n);
      this.ready.push(own);
      return { bytes: own, at: 0 };
    }
    if (this.at + n > this.target) this.seal();
    const at = this.at;
    this.at += n;
    return { bytes: this.chunk, at };
  }

  /** Whatever is gathered becomes a chunk now (at the end of the data). */
  flush(): void {
    this.seal();
  }

  private seal(): void {
    if (this.at === 0) return;
    this.ready.push(this.at === this.target ? this.chunk : this.chunk.subarray(0, this.at));
    this.chunk = new Uint8Array(this.target);
    this.at = 0;
  }
}

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
    const c = this.chunks[this.first];
    const h = this.head;
    if (c === undefined || c.length - h < 8) return undefined;
    if ((c[h + 4]! | c[h + 5]! | c[h + 6]! | c[h + 7]!) !== 0) return undefined;
    const len = (c[h]! | (c[h + 1]! << 8) | (c[h + 2]! << 16) | (c[h + 3]! << 24)) >>> 0;
    if (len > max) return undefined;
    const end = h + 8 + len + padLength(len);
    if (end > c.length) return undefined;
    for (let i = h + 8 + len; i < end; i++) if (c[i] !== 0) return undefined;
    const out = c.subarray(h + 8, h + 8 + len);
    this.consume(end - h);
    return out;
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
