// Decoding a plan bundle: its manifest frame without decompressing, and its export stream,
// decompressed with the framing, both digests and both sizes checked as it goes.
import { createHash } from 'node:crypto';
import { Readable, type TransformOptions } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zc, createZstdDecompress, type ZstdOptions } from 'node:zlib';
import { NixPlanError } from '../errors.js';
import { SKIPPABLE_HEADER_SIZE, ZstdFrameScanner, parseSkippableHeader, type FrameInfo } from './frame.js';
import { DEFAULT_MAX_MANIFEST_SIZE, parseManifest, type BundleManifest } from './manifest.js';
import { DEFAULT_READER_LIMITS, checkCompressedSize, checkSizeLimits, type ReaderLimits } from './limits.js';
import type { BundleSource } from './source.js';

/** Output chunk of the zstd decoder. */
const DECODE_CHUNK = 1024 * 1024;

/** A bundle's manifest and where its data frame is. */
export interface BundleHead {
  readonly manifest: BundleManifest;
  /** Byte offset of the data frame (just after the manifest frame). */
  readonly dataOffset: number;
  /** Size of the bundle file. */
  readonly bundleBytes: number;
}

function bad(message: string): NixPlanError {
  return new NixPlanError('bundle', message);
}

/**
 * Reads and validates the manifest frame (no decompression): header, size limit, schema,
 * canonical form, checksum, and the file's length against the manifest, so truncated or
 * extended files are refused before any decoding. This is all `inspect` needs.
 */
export async function readBundleHead(
  source: BundleSource,
  maxManifestSize = DEFAULT_MAX_MANIFEST_SIZE,
): Promise<BundleHead> {
  const header = await source.read(0, SKIPPABLE_HEADER_SIZE);
  const { size } = parseSkippableHeader(header, maxManifestSize, `plan bundle '${source.name}'`);
  const dataOffset = SKIPPABLE_HEADER_SIZE + size;
  if (dataOffset > source.size)
    throw bad(
      `plan bundle '${source.name}' is truncated: its manifest frame needs ${dataOffset} bytes, the file has ${source.size}`,
    );
  const manifest = parseManifest(await source.read(SKIPPABLE_HEADER_SIZE, size), maxManifestSize);
  const expected = dataOffset + manifest.stream.compressedSize;
  if (source.size !== expected)
    throw bad(
      `plan bundle '${source.name}' is ${source.size < expected ? 'truncated' : 'followed by extra bytes'}: the manifest says ${expected} bytes, the file has ${source.size}`,
    );
  return { manifest, dataOffset, bundleBytes: source.size };
}

/**
 * The head of a bundle about to be copied (into a private copy, out of a shared directory), checked
 * as far as it can be without reading on: the file is as long as its manifest says, and the
 * manifest declares no more compressed bytes than zstd makes of its stream. A sparse terabyte
 * behind a valid head is refused here, before a byte of it is copied.
 */
export async function readCheckedHead(source: BundleSource): Promise<BundleHead> {
  const head = await readBundleHead(source);
  checkCompressedSize(head.manifest, source.name);
  return head;
}

/**
 * The decompressed export stream of a bundle whose head was read, checking as it goes: the data
 * frame's structure (exactly one frame that ends at end of file), the compressed digest and
 * size, and an output no longer than the manifest records; the uncompressed digest and size at
 * the end. With `holdBackEnd`, the last 8 bytes (the export stream's end marker) are released
 * only after the digests matched, so `nix-store --import` fails on a bundle changed under it.
 */
export async function* decompressedStream(
  source: BundleSource,
  head: BundleHead,
  limits: Pick<ReaderLimits, 'maxWindowLog'> = DEFAULT_READER_LIMITS,
  options: { holdBackEnd?: boolean; onFrame?: (info: FrameInfo) => void } = {},
): AsyncGenerator<Uint8Array> {
  const holdBackEnd = options.holdBackEnd === true;
  const { stream } = head.manifest;
  const scanner = new ZstdFrameScanner(head.dataOffset, { maxWindowLog: limits.maxWindowLog });
  const packedHash = createHash('sha256');
  let packedSize = 0;
  async function* compressed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of source.stream(head.dataOffset)) {
      scanner.push(chunk);
      packedHash.update(chunk);
      packedSize += chunk.length;
      yield chunk;
    }
    scanner.finish();
    if (packedSize !== stream.compressedSize || packedHash.digest('hex') !== stream.compressedSha256)
      throw bad(`the compressed data of '${source.name}' does not match its manifest: the bundle is corrupt`);
  }
  // Decompression runs on libuv's threadpool: large output chunks and a deep read-ahead let it
  // work ahead while the main thread parses and hashes what came before (1 MiB chunks, up to 8).
  const decoderOptions: ZstdOptions & TransformOptions = {
    params: { [zc.ZSTD_d_windowLogMax]: limits.maxWindowLog },
    chunkSize: DECODE_CHUNK,
    highWaterMark: 8 * DECODE_CHUNK, // zlib streams pass Transform options on
  };
  const decoder = createZstdDecompress(decoderOptions);
  // Errors of any stage surface through iteration of the decoder; the promise only ends the chain.
  pipeline(Readable.from(compressed()), decoder).catch(() => undefined);
  const rawHash = createHash('sha256');
  let rawSize = 0;
  let held: Uint8Array = new Uint8Array(0);
  try {
    for await (const c of decoder as AsyncIterable<Buffer>) {
      const chunk = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
      rawSize += chunk.length;
      if (rawSize > stream.size)
        throw bad(
          `the data of '${source.name}' decompresses to more than the ${stream.size} bytes its manifest records: refusing it (corrupt, or a zip bomb)`,
        );
      rawHash.update(chunk);
      if (!holdBackEnd) {
        yield chunk;
        continue;
      }
      const all = held.length === 0 ? chunk : new Uint8Array(Buffer.concat([held, chunk]));
      const cut = Math.max(0, all.length - 8);
      held = all.slice(cut);
      if (cut > 0) yield all.subarray(0, cut);
    }
  } catch (e) {
    if (e instanceof NixPlanError) throw e;
    throw bad(`the zstd data of '${source.name}' is corrupt: ${(e as Error).message}`);
  }
  // The decoder stops at the end of the first frame; the scanner has seen the rest of the file.
  options.onFrame?.(scanner.finish());
  if (rawSize !== stream.size || rawHash.digest('hex') !== stream.sha256)
    throw bad(
      `the export stream of '${source.name}' does not match the sha256 and size in its manifest: the bundle is corrupt`,
    );
  if (held.length > 0) yield held;
}

/**
 * The export stream of a bundle, for `nix-store --import` after `verifyBundle` succeeded on the
 * same source: decompressed again with the framing and digests re-checked, the end marker held
 * back until they matched (see `decompressedStream`).
 */
export async function* exportStream(
  source: BundleSource,
  limits: Partial<ReaderLimits> = {},
): AsyncGenerator<Uint8Array> {
  const lim: ReaderLimits = { ...DEFAULT_READER_LIMITS, ...limits };
  const head = await readBundleHead(source, lim.maxManifestSize);
  checkSizeLimits(head.manifest, lim);
  yield* decompressedStream(source, head, lim, { holdBackEnd: true });
}
