// zstd framing for plan bundles: the manifest's skippable frame, and a scanner that checks a data frame's structure.
//
// A bundle is `skippable frame (manifest)` + `one zstd data frame (export stream)`. `zstd -d` skips the
// first and decodes the second; node:zlib's decoder stops at the end of the *first* frame and silently
// drops anything after it, so the reader parses the skippable frame itself and walks the data frame's
// block headers (cheap, no decompression) to prove it is exactly one frame that ends at end of file.
// Format reference: RFC 8878 (Zstandard), sections 3.1.1 (frames) and 3.1.2 (skippable frames).
import { LimitError, MalformedError, NixPlanError } from '../errors.js';

/** First and last magic numbers of zstd skippable frames (any low nibble is allowed by zstd). */
export const SKIPPABLE_MAGIC_FIRST = 0x184d2a50;
/** Last skippable-frame magic number. */
export const SKIPPABLE_MAGIC_LAST = 0x184d2a5f;
/**
 * The skippable-frame magic nix-plan writes its manifest with. Nibble 7 is not used by the tools we
 * know of (pzstd uses 0, the seekable format 0xE), so the magic itself identifies a plan bundle.
 */
export const MANIFEST_FRAME_MAGIC = 0x184d2a57;
/** Magic number of a zstd data frame. */
export const ZSTD_FRAME_MAGIC = 0xfd2fb528;
/** Size of a skippable frame's header: u32 LE magic, u32 LE payload size. */
export const SKIPPABLE_HEADER_SIZE = 8;
/**
 * zstd's default decoder window limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT): frames with a larger window
 * need `zstd -d --long=N`/`--memory`. Bundles stay within it so stock `zstd -dc` decodes them.
 */
export const DEFAULT_MAX_WINDOW_LOG = 27;
/** Largest block a zstd frame may hold (RFC 8878, Block_Maximum_Size). */
export const ZSTD_MAX_BLOCK_SIZE = 128 * 1024;

/** True when `magic` is one of the 16 skippable-frame magic numbers. */
export function isSkippableMagic(magic: number): boolean {
  return magic >= SKIPPABLE_MAGIC_FIRST && magic <= SKIPPABLE_MAGIC_LAST;
}

/** Encodes `payload` as a skippable frame (header and payload in one array). */
export function encodeSkippableFrame(payload: Uint8Array, magic = MANIFEST_FRAME_MAGIC): Uint8Array {
  if (!isSkippableMagic(magic))
    throw new RangeError(`0x${magic.toString(16)} is not a skippable-frame magic`);
  if (payload.length > 0xffffffff) throw new LimitError('a skippable frame holds at most 4 GiB');
  const out = new Uint8Array(SKIPPABLE_HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic, true);
  view.setUint32(4, payload.length, true);
  out.set(payload, SKIPPABLE_HEADER_SIZE);
  return out;
}

/** A parsed skippable-frame header. */
export interface SkippableHeader {
  readonly magic: number;
  /** Payload size in bytes (the frame is `SKIPPABLE_HEADER_SIZE + size` bytes long). */
  readonly size: number;
}

/**
 * Parses the 8-byte header at the start of `bytes`. Refuses a data frame or anything else with a
 * message saying what the file looks like, and payloads above `maxSize` before anything is read.
 */
export function parseSkippableHeader(
  bytes: Uint8Array,
  maxSize: number,
  what = 'plan bundle',
): SkippableHeader {
  if (bytes.length < SKIPPABLE_HEADER_SIZE)
    throw new MalformedError(
      what,
      bytes.length,
      `file too short for a zstd frame header (${bytes.length} of ${SKIPPABLE_HEADER_SIZE} bytes)`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, SKIPPABLE_HEADER_SIZE);
  const magic = view.getUint32(0, true);
  if (magic === ZSTD_FRAME_MAGIC)
    throw new MalformedError(
      what,
      0,
      'this is a plain zstd file without a nix-plan manifest (a bundle starts with a skippable frame)',
    );
  if (!isSkippableMagic(magic))
    throw new MalformedError(what, 0, `not a zstd skippable frame (magic 0x${magic.toString(16)})`);
  const size = view.getUint32(4, true);
  // The manifest's frame: a manifest too large to read is a bad bundle (exit 3), as on write.
  if (size > maxSize)
    throw new NixPlanError(
      'bundle',
      `${what}: the skippable frame claims ${size} bytes, more than the limit of ${maxSize} bytes at byte offset 4`,
    );
  return { magic, size };
}

/** Limits the data-frame scanner enforces. */
export interface FrameLimits {
  /** Largest window (log2) accepted; above zstd's default decoder limit stock tools need flags. */
  readonly maxWindowLog: number;
}

/** What the scanner learned about a complete data frame. */
export interface FrameInfo {
  /** Window size the decoder needs. */
  readonly windowSize: number;
  /** Decompressed size when the frame header records it. */
  readonly contentSize: number | undefined;
  readonly hasChecksum: boolean;
  readonly blocks: number;
  /** Offsets (relative to the frame start) where each block header begins, then the frame end. */
  readonly boundaries: readonly number[];
}

type State = 'magic' | 'descriptor' | 'header' | 'block-header' | 'block-body' | 'checksum' | 'done';

/**
 * Walks one zstd data frame chunk by chunk without decompressing: magic, frame header, every block
 * header (skipping block bodies), the optional checksum. Errors name the absolute byte offset.
 * Refuses dictionaries, reserved bits, reserved block types, oversized blocks and windows, and any
 * byte after the frame ends.
 */
export class ZstdFrameScanner {
  private state: State = 'magic';
  private need = 4; // bytes still wanted for the current fixed-size field
  private field: number[] = [];
  private skip = 0; // block body bytes still to skip
  private lastBlock = false;
  private consumed = 0; // bytes of the frame seen so far
  private headerRest = 0;
  private descriptor = 0;
  private windowSize = 0;
  private contentSize: number | undefined;
  private blockMax = ZSTD_MAX_BLOCK_SIZE;
  private readonly boundaries: number[] = [];
  private blockCount = 0;

  /**
   * @param base absolute offset of the frame's first byte in the file, for error messages.
   */
  constructor(
    private readonly base: number,
    private readonly limits: FrameLimits = { maxWindowLog: DEFAULT_MAX_WINDOW_LOG },
    private readonly what = 'plan bundle data frame',
  ) {}

  /** True once the frame's last block (and checksum) has been seen. */
  get complete(): boolean {
    return this.state === 'done';
  }

  private fail(detail: string, at = this.consumed): MalformedError {
    return new MalformedError(this.what, this.base + at, detail);
  }

  /** Feeds the next chunk of the file; throws at the first structural problem or a byte past the frame. */
  push(chunk: Uint8Array): void {
    if (this.pushUntilEnd(chunk) < chunk.length) throw this.fail('trailing bytes after the zstd data frame');
  }

  /**
   * Feeds bytes up to the end of the frame and returns how many were consumed (less than the
   * chunk's length once the frame is complete); throws at the first structural problem.
   */
  pushUntilEnd(chunk: Uint8Array): number {
    let i = 0;
    while (i < chunk.length && this.state !== 'done') {
      if (this.state === 'block-body') {
        const take = Math.min(this.skip, chunk.length - i);
        this.skip -= take;
        this.consumed += take;
        i += take;
        if (this.skip === 0) this.endBlock();
        continue;
      }
      this.field.push(chunk[i] ?? 0);
      i++;
      this.consumed++;
      if (--this.need === 0) this.fieldDone();
    }
    return i;
  }

  /** Call at end of input: throws unless exactly one whole frame was seen. */
  finish(): FrameInfo {
    if (this.state !== 'done')
      throw this.fail(`the zstd data frame is truncated (ends inside its ${this.state.replace('-', ' ')})`);
    return {
      windowSize: this.windowSize,
      contentSize: this.contentSize,
      hasChecksum: (this.descriptor & 0x04) !== 0,
      blocks: this.blockCount,
      boundaries: this.boundaries,
    };
  }

  private expect(state: State, n: number): void {
    this.state = state;
    this.need = n;
    this.field = [];
  }

  private fieldDone(): void {
    const f = this.field;
    const at = this.consumed - f.length;
    switch (this.state) {
      case 'magic': {
        const magic = ((f[0] ?? 0) | ((f[1] ?? 0) << 8) | ((f[2] ?? 0) << 16) | ((f[3] ?? 0) << 24)) >>> 0;
        if (isSkippableMagic(magic))
          throw this.fail('a second skippable frame where the zstd data frame should start', at);
        if (magic !== ZSTD_FRAME_MAGIC)
          throw this.fail(`expected a zstd data frame (magic 0x${magic.toString(16)})`, at);
        this.expect('descriptor', 1);
        return;
      }
      case 'descriptor': {
        const d = f[0] ?? 0;
        this.descriptor = d;
        if ((d & 0x08) !== 0) throw this.fail('reserved bit set in the zstd frame header', at);
        if ((d & 0x10) !== 0) throw this.fail('unused bit set in the zstd frame header', at);
        if ((d & 0x03) !== 0) throw this.fail('the zstd frame needs a dictionary; bundles use none', at);
        const singleSegment = (d & 0x20) !== 0;
        const fcsFlag = d >> 6;
        const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag] ?? 0;
        this.headerRest = (singleSegment ? 0 : 1) + fcsSize;
        if (this.headerRest === 0) this.headerDone([]);
        else this.expect('header', this.headerRest);
        return;
      }
      case 'header':
        this.headerDone(f);
        return;
      case 'block-header': {
        const h = (f[0] ?? 0) | ((f[1] ?? 0) << 8) | ((f[2] ?? 0) << 16);
        this.lastBlock = (h & 1) !== 0;
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) throw this.fail('reserved zstd block type', at);
        if (size > this.blockMax)
          throw this.fail(`zstd block of ${size} bytes exceeds the maximum of ${this.blockMax}`, at);
        this.skip = type === 1 ? 1 : size; // RLE blocks store one byte
        this.state = 'block-body';
        if (this.skip === 0) this.endBlock();
        return;
      }
      case 'checksum':
        this.finishFrame();
        return;
      default:
        throw this.fail('internal: scanner in an impossible state', at);
    }
  }

  private headerDone(f: number[]): void {
    const at = this.consumed - f.length;
    const singleSegment = (this.descriptor & 0x20) !== 0;
    let i = 0;
    let windowSize = 0;
    if (!singleSegment) {
      const wd = f[i++] ?? 0;
      const exponent = wd >> 3;
      const windowLog = 10 + exponent;
      if (windowLog > this.limits.maxWindowLog)
        throw new LimitError(
          `${this.what}: window of 2^${windowLog} bytes exceeds the limit 2^${this.limits.maxWindowLog} at byte offset ${this.base + at}`,
        );
      const base = 2 ** windowLog;
      windowSize = base + (base / 8) * (wd & 7);
    }
    const fcsBytes = f.slice(i);
    let contentSize: number | undefined;
    if (fcsBytes.length > 0) {
      let v = 0n;
      for (let k = fcsBytes.length - 1; k >= 0; k--) v = (v << 8n) | BigInt(fcsBytes[k] ?? 0);
      if (fcsBytes.length === 2) v += 256n;
      if (v > BigInt(Number.MAX_SAFE_INTEGER))
        throw new LimitError(`${this.what}: content size ${v} is too large at byte offset ${this.base + at}`);
      contentSize = Number(v);
    }
    if (singleSegment) {
      windowSize = contentSize ?? 0;
      if (windowSize > 2 ** this.limits.maxWindowLog)
        throw new LimitError(
          `${this.what}: single-segment window of ${windowSize} bytes exceeds the limit 2^${this.limits.maxWindowLog} at byte offset ${this.base + at}`,
        );
    }
    this.windowSize = windowSize;
    this.contentSize = contentSize;
    this.blockMax = Math.min(Math.max(windowSize, 1), ZSTD_MAX_BLOCK_SIZE);
    this.boundaries.push(this.consumed);
    this.expect('block-header', 3);
  }

  private endBlock(): void {
    this.blockCount++;
    this.boundaries.push(this.consumed);
    if (!this.lastBlock) this.expect('block-header', 3);
    else if ((this.descriptor & 0x04) !== 0) this.expect('checksum', 4);
    else this.finishFrame();
  }

  private finishFrame(): void {
    this.state = 'done';
    this.field = [];
    if (this.boundaries[this.boundaries.length - 1] !== this.consumed) this.boundaries.push(this.consumed);
  }
}
