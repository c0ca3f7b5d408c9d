// Bytes in Nix's wire format (little-endian u64s, length-prefixed zero-padded strings), and the
// byte helpers every stream reader and writer shares: comparison, concatenation, a block allocator
// for many small arrays, and a batcher of small writes.

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
