// Writing a bundle file: the export stream is compressed into one zstd frame in a temporary file
// (hashing both sides on the way), then the manifest frame and the data are assembled and renamed
// into place, so a reader never sees a half-written bundle.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zc, createZstdCompress } from 'node:zlib';
import { NixPlanError } from '../core/errors.js';
import { encodeSkippableFrame } from '../core/bundle/frame.js';
import {
  encodeManifest,
  finaliseManifest,
  type BundleManifest,
  type ManifestDraft,
  type ManifestSignature,
} from '../core/bundle/manifest.js';
import type { SecretKey } from '../core/signing.js';

/** Default zstd level: most of level 19's ratio at a fraction of its time (see formats.md). */
export const DEFAULT_LEVEL = 12;

/** Counts bytes and hashes them as they pass. */
class Digest extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  constructor(private readonly onChunk?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    this.onChunk?.(chunk.length);
    cb(null, chunk);
  }
  hex(): string {
    return this.hash.digest('hex');
  }
}

/** A temporary file next to `path`, so the final rename stays on one file system. */
export function tempPathNear(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Options of `writeBundleFile`. */
export interface WriteBundleOptions {
  readonly level?: number | undefined;
  readonly keys?: readonly SecretKey[] | undefined;
  /** Signatures carried over unchanged (none by default). */
  readonly signatures?: ManifestSignature[] | undefined;
  /** Called with the number of uncompressed bytes as they are compressed. */
  readonly onBytes?: ((n: number) => void) | undefined;
}

/**
 * Writes `NAME.nixplan` at `path`: the manifest (completed with the stream's sizes and digests,
 * signed with `keys`) in a skippable frame, then `exportStream` as one zstd frame. Returns the
 * final manifest and the file's size. The file appears atomically (rename).
 */
export async function writeBundleFile(
  path: string,
  draft: ManifestDraft,
  exportStream: AsyncIterable<Uint8Array>,
  options: WriteBundleOptions = {},
): Promise<{ manifest: BundleManifest; bundleBytes: number }> {
  const dataTemp = tempPathNear(path);
  const finalTemp = tempPathNear(path);
  try {
    const raw = new Digest(options.onBytes);
    const packed = new Digest();
    const zstd = createZstdCompress({
      params: {
        [zc.ZSTD_c_compressionLevel]: options.level ?? DEFAULT_LEVEL,
        [zc.ZSTD_c_checksumFlag]: 1,
      },
    });
    try {
      await pipeline(
        Readable.from(exportStream),
        raw,
        zstd,
        packed,
        createWriteStream(dataTemp, { mode: 0o600 }),
      );
    } catch (e) {
      if (e instanceof NixPlanError) throw e;
      throw new NixPlanError(
        'internal',
        `cannot write the bundle's data to '${dataTemp}': ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    const manifest = finaliseManifest(
      {
        format: 'nix-plan',
        formatVersion: 1,
        ...draft,
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
    const frame = encodeSkippableFrame(encodeManifest(manifest));
    await pipeline(
      (async function* () {
        yield frame;
        yield* createReadStream(dataTemp) as AsyncIterable<Uint8Array>;
      })(),
      createWriteStream(finalTemp, { mode: 0o644 }),
    );
    await rename(finalTemp, path);
    return { manifest, bundleBytes: (await stat(path)).size };
  } catch (e) {
    await rm(finalTemp, { force: true });
    if (e instanceof NixPlanError) throw e;
    throw new NixPlanError('internal', `cannot write bundle '${path}': ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    await rm(dataTemp, { force: true });
  }
}
