// Reading a plan bundle: the manifest without decompressing, a streaming verifier, and the verified export stream.
//
// Verification is one streaming pass that checks everything `nix-store --import` relies on before
// a byte reaches Nix: the skippable frame and the manifest (schema, checksum, realm, signatures),
// limits (absolute and compression ratio) before decompressing, the data frame's structure (one
// frame ending at end of file), both digests and sizes, every NAR and entry, store paths, that
// references are closed over bundle ∪ store and come first, that every .drv/text/source path is
// the hash of its content, counts and roots. Memory is bounded by the limits, not by the bundle.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable, type TransformOptions } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zc, createZstdDecompress, type ZstdOptions } from 'node:zlib';
import { LimitError, NixPlanError } from '../errors.js';
import { identifyContentAddress } from '../content-address.js';
import { compareBytes, derivationReferences, parseDerivation, type DerivationHead } from '../derivation.js';
import { DEFAULT_EXPORT_LIMITS, readExport, type ExportLimits, type ExportedPath } from '../export-stream.js';
import { parsePublicKey, type PublicKey } from '../signing.js';
import {
  DEFAULT_MAX_WINDOW_LOG,
  SKIPPABLE_HEADER_SIZE,
  ZstdFrameScanner,
  parseSkippableHeader,
  type FrameInfo,
} from './frame.js';
import {
  DEFAULT_MAX_MANIFEST_SIZE,
  OBJECT_KINDS,
  parseManifest,
  verifyManifestSignatures,
  type BundleManifest,
  type ObjectKind,
} from './manifest.js';

/** Random access to a bundle's bytes: a file, or memory (tests, fuzzing). */
export interface BundleSource {
  /** Names the bundle in messages (its path). */
  readonly name: string;
  readonly size: number;
  /** Reads `length` bytes at `offset` (fewer only at end of file). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The bytes from `offset` to the end, in chunks. */
  stream(offset: number): AsyncIterable<Uint8Array>;
  /** Releases the file (no-op for memory). */
  close(): Promise<void>;
}

/** Bounds that keep a hostile bundle from exhausting memory, disk or time. */
export interface ReaderLimits {
  maxManifestSize: number;
  /** Largest uncompressed export stream accepted. */
  maxStreamSize: number;
  /** Largest uncompressed/compressed ratio accepted (a zip bomb has a huge one). */
  maxRatio: number;
  /** Largest zstd window (log2); 27 is stock zstd's default limit. */
  maxWindowLog: number;
  /** Limits of the export stream reader (paths, references, NAR structure, kept file size). */
  export: Partial<ExportLimits>;
}

/** Defaults: generous for real closures (drv closures compress about 20×), tight for bombs. */
export const DEFAULT_READER_LIMITS: Readonly<ReaderLimits> = Object.freeze({
  maxManifestSize: DEFAULT_MAX_MANIFEST_SIZE,
  maxStreamSize: 2 ** 40,
  maxRatio: 1000,
  maxWindowLog: DEFAULT_MAX_WINDOW_LOG,
  export: {},
});

const CHUNK = 256 * 1024;
/** Output chunk of the zstd decoder. */
const DECODE_CHUNK = 1024 * 1024;

/** A bundle held in memory. */
export function memorySource(bytes: Uint8Array, name = 'bundle', chunkSize = CHUNK): BundleSource {
  return {
    name,
    size: bytes.length,
    read: (offset, length) =>
      Promise.resolve(bytes.subarray(offset, Math.min(bytes.length, offset + length))),
    stream: async function* (offset: number): AsyncGenerator<Uint8Array> {
      for (let at = offset; at < bytes.length; at += chunkSize)
        yield await Promise.resolve(bytes.subarray(at, at + chunkSize));
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Opens a bundle file. Verify and import through the same source: it reads through one open
 * file descriptor, so a bundle renamed over after verification is not what gets imported.
 */
export async function openBundle(path: string): Promise<BundleSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new NixPlanError('usage', `cannot open bundle '${path}': ${(e as Error).message}`);
  }
  const { size } = await fh.stat();
  const read = async (offset: number, length: number): Promise<Uint8Array> => {
    const buf = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  };
  return {
    name: path,
    size,
    read,
    stream: async function* (offset: number): AsyncGenerator<Uint8Array> {
      // Fresh buffers: readers downstream keep views of the chunks.
      for (let at = offset; ;) {
        const chunk = await read(at, CHUNK);
        if (chunk.length === 0) return;
        at += chunk.length;
        yield chunk;
      }
    },
    close: () => fh.close(),
  };
}

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

/** Refuses, before decompressing, a stream whose recorded size breaks the limits. */
function checkSizeLimits(manifest: BundleManifest, limits: ReaderLimits): void {
  const { size, compressedSize } = manifest.stream;
  if (size > limits.maxStreamSize)
    throw new LimitError(
      `the bundle's export stream is ${size} bytes, more than the limit of ${limits.maxStreamSize} bytes`,
    );
  if (size > compressedSize * limits.maxRatio)
    throw new LimitError(
      `the bundle decompresses ${compressedSize} bytes to ${size} (ratio ${Math.round(size / compressedSize)}), more than the limit of ${limits.maxRatio}: refusing a possible zip bomb`,
    );
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

/** What the verifier knows of an entry when it hands it on. */
export interface VerifiedEntry extends ExportedPath {
  readonly kind: ObjectKind;
  /** The narinfo `CA:` value for content-addressed entries. */
  readonly ca: string | undefined;
}

/** What to require of a bundle beyond its own consistency. */
export interface VerifyOptions {
  /** The store dir of the store it is for; a bundle for another realm is refused. */
  readonly storeDir?: string | undefined;
  /** Public keys (`NAME:base64` or parsed); when given, a valid signature by one is required. */
  readonly trustedKeys?: readonly (string | PublicKey)[] | undefined;
  /** Whether a signature is required (default: when trustedKeys are given). */
  readonly requireSignature?: boolean | undefined;
  /** Whether a path outside the bundle is valid in the target store (default: none is). */
  readonly isValidInStore?: ((path: string) => boolean | Promise<boolean>) | undefined;
  readonly limits?: Partial<ReaderLimits> | undefined;
  /** Called for each entry once it is checked (the bundle as a whole is valid only at the end). */
  readonly onEntry?: ((entry: VerifiedEntry) => void | Promise<void>) | undefined;
  /**
   * The raw NAR bytes of entry `index`, before the entry is checked and handed to `onEntry`
   * (chunks may be views of a larger buffer: copy what is kept).
   */
  readonly onNarBytes?: ((chunk: Uint8Array, index: number) => void) | undefined;
  /**
   * Every byte of the decompressed export stream, in order and in large chunks, before it is
   * parsed: exactly the bytes verified, so a caller can keep a private copy to import once
   * verification succeeded (the stream is valid only when verifyBundle returns).
   */
  readonly onStreamBytes?: ((chunk: Uint8Array) => void) | undefined;
  /**
   * How entries' kept `.drv` and text bytes (`nar.file`) are handed to `onEntry`: 'copy'
   * (default), or 'view' for a caller that copies or writes each before the next entry (see
   * `readExport`'s option of the same name).
   */
  readonly keptFiles?: 'copy' | 'view' | undefined;
  /**
   * Default true: every .drv is parsed and validated to its end, and checked against its entry
   * and the manifest (references = inputs, systems, roots' outputs). false: no .drv is parsed
   * here, for a caller that parses every one whole itself before it writes anything (relocation
   * does): it must pass each parsed .drv to the report's `derivations.check` and, once all are,
   * call `derivations.finish()`; the bundle is valid only then.
   */
  readonly parseDerivations?: boolean | undefined;
}

/** The outcome of a successful verification (a failed one throws). */
export interface VerifyReport {
  readonly manifest: BundleManifest;
  readonly bundleBytes: number;
  readonly paths: number;
  readonly counts: Record<ObjectKind, number>;
  readonly narBytes: Record<ObjectKind, number>;
  /** Trusted keys whose signatures verified (empty when none were required). */
  readonly trustedSignatures: readonly string[];
  /** References found valid in the store instead of in the bundle. */
  readonly storeReferences: number;
  readonly frame: Pick<FrameInfo, 'windowSize' | 'blocks'>;
  /** With `parseDerivations: false`, the checks of the .drv files left to the caller. */
  readonly derivations?: DerivationChecks | undefined;
}

/**
 * The checks of a bundle's .drv files against their entries and the manifest: each .drv's
 * references are its inputs (`check`, as each is parsed), and the manifest's systems and its
 * roots' outputs are the ones the .drv files give (`finish`, once all are checked). Errors are
 * 'bundle' NixPlanErrors, whoever parses the .drv files.
 */
export class DerivationChecks {
  private readonly systems = new Set<string>();
  /** The system of the last .drv checked: nearly all are the same, and need no string made. */
  private lastSystem: Uint8Array | undefined;
  private readonly rootOutputs = new Map<string, Map<string, string>>();
  private readonly rootDrvs: Set<string>;
  private anyChecked = false;

  constructor(private readonly manifest: BundleManifest) {
    this.rootDrvs = new Set(manifest.roots.map((r) => r.drvPath));
  }

  /** Checks a parsed .drv against its entry (the same .drv may be passed again). */
  check(path: string, references: readonly string[], drv: DerivationHead): void {
    const inputs = derivationReferences(drv);
    if (inputs.length !== references.length || inputs.some((r, i) => r !== references[i]))
      throw bad(`the references of '${path}' differ from the inputs its contents name`);
    const { system } = drv;
    if (this.lastSystem === undefined || compareBytes(system, this.lastSystem) !== 0) {
      this.systems.add(Buffer.from(system.buffer, system.byteOffset, system.byteLength).toString('latin1'));
      this.lastSystem = system.slice(); // a view would pin the bytes around it
    }
    if (this.rootDrvs.has(path) && !this.rootOutputs.has(path))
      this.rootOutputs.set(path, new Map(drv.outputs.map((o) => [o.name, o.path])));
    this.anyChecked = true;
  }

  /** The checks of the manifest against all the .drv files, once each was checked. */
  finish(): void {
    // A root's outputs must be the ones its .drv names (when the .drv is in the bundle).
    for (const root of this.manifest.roots) {
      const outputs = this.rootOutputs.get(root.drvPath);
      if (outputs !== undefined)
        for (const [name, path] of Object.entries(root.outputs))
          if (outputs.get(name) !== path)
            throw bad(
              `the manifest gives output '${name}' of root '${root.drvPath}' as '${path}', but the .drv says '${outputs.get(name) ?? 'no such output'}'`,
            );
    }
    const drvSystems = [...this.systems].sort();
    const { systems } = this.manifest;
    if (this.anyChecked && drvSystems.join(' ') !== systems.join(' '))
      throw bad(
        `the manifest lists the systems [${systems.join(', ')}], but the bundle's .drv files are for [${drvSystems.join(', ')}]`,
      );
  }
}

/**
 * The kind of an entry, refusing a .drv that is not text-addressed (or, given `derivations` to
 * check it with, whose parse fails or whose references are not its inputs), and outputs in a
 * plan-only bundle.
 */
function classify(
  entry: ExportedPath,
  manifest: BundleManifest,
  limits: Partial<ExportLimits>,
  derivations: DerivationChecks | undefined,
): VerifiedEntry {
  const ca = identifyContentAddress(
    {
      path: entry.path,
      references: entry.references,
      narHash: () => entry.nar.narHash, // not asked for a .drv or text: its NAR is never hashed
      file: entry.nar.file,
      fileSha256: entry.nar.fileHash,
    },
    manifest.storeDir,
  );
  if (entry.path.endsWith('.drv')) {
    if (entry.nar.file === undefined && entry.nar.fileHash !== undefined)
      throw new LimitError(
        `'${entry.path}' is larger than the limit of ${limits.keepFileUpTo ?? DEFAULT_EXPORT_LIMITS.keepFileUpTo} bytes for a .drv`,
      );
    if (ca?.kind !== 'drv')
      throw bad(`'${entry.path}' is not the hash of its contents and references: the bundle was altered`);
    if (derivations !== undefined)
      derivations.check(
        entry.path,
        entry.references,
        parseDerivation(entry.nar.file?.contents ?? new Uint8Array(0)),
      );
    return { ...entry, kind: 'drv', ca: ca.ca };
  }
  const kind: ObjectKind = ca?.kind ?? 'output';
  if (kind === 'output' && manifest.include === 'drvs')
    throw bad(
      `'${entry.path}' is not the hash of its contents, but a 'drvs' bundle holds only content-addressed paths: the bundle was altered`,
    );
  return { ...entry, kind, ca: ca?.ca };
}

/**
 * Verifies a bundle completely in one streaming pass (see the module comment) and returns what
 * it holds; throws a NixPlanError ('bundle', 'malformed', 'limit', 'closure', 'realm',
 * 'signature') at the first problem. Pass a path or an open source.
 */
export async function verifyBundle(
  bundle: string | BundleSource,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const source = typeof bundle === 'string' ? await openBundle(bundle) : bundle;
  try {
    return await verifySource(source, options);
  } finally {
    if (typeof bundle === 'string') await source.close();
  }
}

async function verifySource(source: BundleSource, options: VerifyOptions): Promise<VerifyReport> {
  const limits: ReaderLimits = { ...DEFAULT_READER_LIMITS, ...options.limits };
  const head = await readBundleHead(source, limits.maxManifestSize);
  const { manifest } = head;
  if (options.storeDir !== undefined && options.storeDir !== manifest.storeDir)
    throw new NixPlanError(
      'realm',
      `'${source.name}' is a plan for the store dir ${manifest.storeDir}, but this store's dir is ${options.storeDir}; relocate it first (nix-plan relocate --to ${options.storeDir})`,
    );
  const keys = (options.trustedKeys ?? []).map((k) => (typeof k === 'string' ? parsePublicKey(k) : k));
  if (options.requireSignature === true && keys.length === 0)
    throw new NixPlanError('usage', 'a signature is required, but no trusted public keys were given');
  const trustedSignatures =
    keys.length > 0 || options.requireSignature === true ? verifyManifestSignatures(manifest, keys) : [];
  checkSizeLimits(manifest, limits);

  const exportLimits: Partial<ExportLimits> = {
    ...limits.export,
    maxPaths: Math.min(limits.export.maxPaths ?? DEFAULT_EXPORT_LIMITS.maxPaths, manifest.paths),
    maxTotalBytes: Math.min(
      limits.export.maxTotalBytes ?? DEFAULT_EXPORT_LIMITS.maxTotalBytes,
      manifest.stream.size,
    ),
  };
  const counts = Object.fromEntries(OBJECT_KINDS.map((k) => [k, 0])) as Record<ObjectKind, number>;
  const narBytes = { ...counts };
  const seen = new Set<string>();
  const inStore = new Map<string, boolean>();
  const pending = new Map<string, string>(); // reference not yet seen → the first path that needs it
  const isValidInStore = options.isValidInStore ?? ((): boolean => false);
  const derivations = new DerivationChecks(manifest);
  const parseDerivations = options.parseDerivations !== false;

  let frame: FrameInfo | undefined;
  const decoded = decompressedStream(source, head, limits, { onFrame: (info) => (frame = info) });
  const data = options.onStreamBytes === undefined ? decoded : tapChunks(decoded, options.onStreamBytes);
  for await (const entry of readExport(data, exportLimits, {
    storeDir: manifest.storeDir,
    ...(options.onNarBytes !== undefined && { onNarBytes: options.onNarBytes }),
    ...(options.keptFiles !== undefined && { keptFiles: options.keptFiles }),
  })) {
    const needer = pending.get(entry.path);
    if (needer !== undefined)
      throw new NixPlanError(
        'closure',
        `'${needer}' refers to '${entry.path}', which comes after it in the bundle: the bundle is out of dependency order`,
      );
    const verified = classify(entry, manifest, exportLimits, parseDerivations ? derivations : undefined);
    for (const r of entry.references) {
      if (r === entry.path || seen.has(r) || pending.has(r)) continue;
      let valid = inStore.get(r);
      if (valid === undefined) {
        valid = await isValidInStore(r);
        inStore.set(r, valid);
      }
      if (!valid) pending.set(r, entry.path);
    }
    seen.add(entry.path);
    counts[verified.kind]++;
    narBytes[verified.kind] += entry.nar.narSize;
    await options.onEntry?.(verified);
  }
  for (const [missing, needer] of pending)
    throw new NixPlanError(
      'closure',
      `'${needer}' refers to '${missing}', which is neither in the bundle nor valid in the store`,
    );
  for (const k of OBJECT_KINDS)
    if (counts[k] !== manifest.counts[k] || narBytes[k] !== manifest.narBytes[k])
      throw bad(
        `'${source.name}' holds ${counts[k]} ${k} paths (${narBytes[k]} NAR bytes), but its manifest says ${manifest.counts[k]} (${manifest.narBytes[k]})`,
      );
  for (const root of manifest.roots) {
    const wanted =
      manifest.include === 'outputs' ? Object.values(root.outputs).filter((p) => p !== '') : [root.drvPath];
    for (const p of wanted) if (!seen.has(p)) throw bad(`root '${p}' is not in the bundle '${source.name}'`);
  }
  if (parseDerivations) derivations.finish();
  let storeReferences = 0;
  for (const v of inStore.values()) if (v) storeReferences++;
  if (frame === undefined) throw new NixPlanError('internal', 'the data frame was not scanned to its end');
  return {
    manifest,
    bundleBytes: head.bundleBytes,
    paths: seen.size,
    counts,
    narBytes,
    trustedSignatures,
    storeReferences,
    frame: { windowSize: frame.windowSize, blocks: frame.blocks },
    ...(!parseDerivations && { derivations }),
  };
}

/** Passes each chunk to `fn` before handing it on. */
async function* tapChunks(
  source: AsyncIterable<Uint8Array>,
  fn: (chunk: Uint8Array) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    fn(chunk);
    yield chunk;
  }
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
