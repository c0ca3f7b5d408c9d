// Writing a plan bundle: the export stream compressed as one zstd frame, behind the manifest's skippable frame.
//
// The manifest comes first in the file but records digests known only at the end, so the data is
// compressed into a temporary file next to the destination (hashing both sides on the way), then
// the manifest frame and the data are copied into a second temporary file that is renamed into
// place: a reader never sees a half-written bundle, and memory does not grow with the closure.
// (This module and source.ts touch files: the bundle's atomic replace needs them. Everything they
// decide is in the pure manifest.ts and frame.ts.)
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform, type TransformCallback, type TransformOptions } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate } from 'node:timers/promises';
import { constants as zc, createZstdCompress, zstdDecompressSync, type ZstdOptions } from 'node:zlib';
import { NixPlanError } from '../errors.js';
import type { SecretKey } from '../signing.js';
import { DEFAULT_MAX_WINDOW_LOG, ZstdFrameScanner, encodeSkippableFrame } from './frame.js';
import {
  MANIFEST_FORMAT,
  MANIFEST_FORMAT_VERSION,
  encodeManifest,
  finaliseManifest,
  type BundleManifest,
  type ManifestDraft,
  type ManifestSignature,
} from './manifest.js';

import { DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL } from './compression.js';

export { DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL };

/** Options of `writeBundle`. */
export interface WriteBundleOptions {
  /** zstd level 1–19 (default 12). */
  readonly level?: number | undefined;
  /**
   * log2 of the compression window, 10–27 (default 27: the most stock `zstd -d` decodes without
   * `--long`; drv closures repeat the same hashes across megabytes, so a long window pays).
   */
  readonly windowLog?: number | undefined;
  /** Long-distance matching (default on), as `zstd --long` does, within `windowLog`. */
  readonly longDistanceMatching?: boolean | undefined;
  /**
   * More zstd parameters (`zlib.constants.ZSTD_c_*` → value) over the level's own, e.g. a match
   * search tuned for drv closures. The window, long-distance matching and the checksum stay as
   * the options above set them, and compression stays single-threaded (see compressionParams).
   */
  readonly params?: Readonly<Record<number, number>> | undefined;
  /** Keys to sign the manifest with. */
  readonly keys?: readonly SecretKey[] | undefined;
  /** Signatures to carry over (e.g. from a manifest being re-written); ones by `keys` are replaced. */
  readonly signatures?: ManifestSignature[] | undefined;
  /** Called with the number of uncompressed bytes as they are compressed (progress). */
  readonly onBytes?: ((n: number) => void) | undefined;
  /**
   * Called with the final manifest before the bundle is moved into place: a throw leaves nothing
   * behind (e.g. a bundle its readers' limits would refuse).
   */
  readonly check?: ((manifest: BundleManifest) => void) | undefined;
}

/** What `writeBundle` wrote. */
export interface WrittenBundle {
  readonly manifest: BundleManifest;
  /** Size of the bundle file. */
  readonly bundleBytes: number;
}

/** A bundle written to a file: where, and what `writeBundle` wrote (what export and relocate return). */
export interface WrittenPlan extends WrittenBundle {
  readonly bundlePath: string;
}

/** Counts and hashes bytes as they pass. */
class Digest extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }
  hex(): string {
    return this.hash.digest('hex');
  }
}

/** Longest tail accepted after the data frame: node's empty frame is 13 bytes. */
const MAX_EMPTY_TAIL = 64;

/**
 * Passes one zstd frame through and drops what node:zlib appends after it. Checked on Node 24.21:
 * a `createZstdCompress` stream that received more than one write emits, after the real frame,
 * an extra EMPTY frame (`28b52ffd 24 00 01 00 00 99e9d851`). Stock `zstd -d` would decode it as
 * nothing, but a bundle's data is exactly one frame, so the tail is verified empty and dropped.
 */
class SingleFrame extends Transform {
  private readonly scanner = new ZstdFrameScanner(0);
  private tail: Buffer[] = [];
  private tailSize = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let rest = chunk;
    if (!this.scanner.complete) {
      let n: number;
      try {
        n = this.scanner.pushUntilEnd(rest);
      } catch (e) {
        return cb(e as Error);
      }
      this.push(rest.subarray(0, n));
      rest = rest.subarray(n);
    }
    if (rest.length > 0) {
      this.tail.push(rest);
      this.tailSize += rest.length;
      if (this.tailSize > MAX_EMPTY_TAIL)
        return cb(new NixPlanError('internal', 'the zstd compressor wrote more than one frame'));
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.scanner.finish();
      let tail = Buffer.concat(this.tail);
      while (tail.length > 0) {
        const s = new ZstdFrameScanner(0);
        const n = s.pushUntilEnd(tail);
        s.finish();
        if (zstdDecompressSync(tail.subarray(0, n)).length !== 0)
          throw new NixPlanError('internal', 'the zstd compressor wrote a second, non-empty frame');
        tail = tail.subarray(n);
      }
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}

/**
 * `stream`, yielding to the event loop after each chunk. zstd compresses on libuv's threadpool,
 * one written chunk per job, and is handed its next chunk only from the event loop: a producer
 * that never waits (an export stream made in memory) would otherwise run ahead until the
 * encoder's buffer is full while the threadpool idles, then idle itself while the threadpool
 * catches up. With the pause, the threadpool compresses one chunk while the next is made.
 */
async function* pausing(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) {
    yield chunk;
    await setImmediate();
  }
}

/** A temporary file next to `path`, so the final rename stays on one file system. */
export function tempPathNear(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

function checkRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    throw new NixPlanError('usage', `${name} must be an integer from ${min} to ${max}, not ${value}`);
  return value;
}

/** The zstd parameters of a bundle's data frame. */
export function compressionParams(options: WriteBundleOptions = {}): Record<number, number> {
  const level = checkRange('the compression level', options.level ?? DEFAULT_LEVEL, MIN_LEVEL, MAX_LEVEL);
  const windowLog = checkRange(
    'the window log',
    options.windowLog ?? DEFAULT_MAX_WINDOW_LOG,
    10,
    DEFAULT_MAX_WINDOW_LOG,
  );
  return {
    [zc.ZSTD_c_compressionLevel]: level,
    ...options.params,
    // No worker threads: with them zstd may take only part of an input chunk while jobs are
    // running, which node:zlib's stream (Node 24.21) takes for the end of the data — it ends the
    // output early and then fails with ERR_STREAM_PUSH_AFTER_EOF once the round buffer fills
    // (reproduced at 200 MB of export stream with nbWorkers 2).
    [zc.ZSTD_c_nbWorkers]: 0,
    [zc.ZSTD_c_windowLog]: windowLog,
    [zc.ZSTD_c_enableLongDistanceMatching]: options.longDistanceMatching === false ? 0 : 1,
    [zc.ZSTD_c_checksumFlag]: 1,
  };
}

function ioError(what: string, path: string, e: unknown): NixPlanError {
  if (e instanceof NixPlanError) return e;
  return new NixPlanError('internal', `cannot ${what} '${path}': ${(e as Error).message}`, { cause: e });
}

/**
 * Writes a bundle at `destination`: the manifest (`draft` completed with the stream's size and
 * digests, signed with `options.keys`) in a skippable frame, then `exportStream` as ONE zstd frame.
 * `draft` may be a function, called once the stream has ended (for what only the stream's making
 * establishes).
 * The file appears atomically; on failure nothing is left behind. Errors thrown by `exportStream`
 * propagate unchanged.
 */
export async function writeBundle(
  destination: string,
  draft: ManifestDraft | (() => ManifestDraft),
  exportStream: AsyncIterable<Uint8Array>,
  options: WriteBundleOptions = {},
): Promise<WrittenBundle> {
  const params = compressionParams(options);
  const dataTemp = tempPathNear(destination);
  const finalTemp = tempPathNear(destination);
  try {
    const encoderOptions: ZstdOptions & TransformOptions = {
      params,
      chunkSize: 256 * 1024,
      highWaterMark: 8 * 1024 * 1024, // zlib streams pass Transform options on
    };
    const raw = new Digest(options.onBytes);
    const packed = new Digest();
    try {
      await pipeline(
        Readable.from(pausing(exportStream)),
        raw,
        // Compression runs on libuv's threadpool: a deep input buffer lets the main thread
        // produce the next entries meanwhile instead of waiting for each 16 KiB.
        createZstdCompress(encoderOptions),
        new SingleFrame(),
        packed,
        createWriteStream(dataTemp, { mode: 0o600 }),
      );
    } catch (e) {
      throw ioError('write the bundle data to', dataTemp, e);
    }
    const manifest = finaliseManifest(
      {
        format: MANIFEST_FORMAT,
        formatVersion: MANIFEST_FORMAT_VERSION,
        ...(typeof draft === 'function' ? draft() : draft),
        stream: {
          sha256: raw.hex(),
          size: raw.size,
          compressedSha256: packed.hex(),
          compressedSize: packed.size,
        },
        ...(options.signatures !== undefined && { signatures: options.signatures }),
      },
      options.keys ?? [],
    );
    options.check?.(manifest);
    const frame = encodeSkippableFrame(encodeManifest(manifest));
    try {
      await pipeline(
        (async function* (): AsyncGenerator<Uint8Array> {
          yield frame;
          yield* createReadStream(dataTemp) as AsyncIterable<Uint8Array>;
        })(),
        createWriteStream(finalTemp, { mode: 0o644 }),
      );
      const fh = await open(finalTemp, 'r');
      try {
        await fh.sync(); // the rename must not outlive the data on a crash
      } finally {
        await fh.close();
      }
      await rename(finalTemp, destination);
    } catch (e) {
      throw ioError('write bundle', destination, e);
    }
    return { manifest, bundleBytes: frame.length + packed.size };
  } catch (e) {
    await rm(finalTemp, { force: true });
    throw e;
  } finally {
    await rm(dataTemp, { force: true });
  }
}
