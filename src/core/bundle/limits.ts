// The bounds that keep a hostile bundle from exhausting memory, disk or time: the reader's limits
// and their defaults, the checks made on a manifest's recorded sizes before anything is
// decompressed, and what a writer checks so it never writes a bundle its readers would refuse.
import { LimitError, NixPlanError } from '../errors.js';
import { DEFAULT_EXPORT_LIMITS, type ExportLimits } from '../export-stream.js';
import { DEFAULT_MAX_WINDOW_LOG } from './frame.js';
import { DEFAULT_MAX_MANIFEST_SIZE, type BundleManifest, type ObjectKind } from './manifest.js';
import { offers, optionName, type OptionNames } from '../option-names.js';

/** Bounds that keep a hostile bundle from exhausting memory, disk or time. */
export interface ReaderLimits {
  maxManifestSize: number;
  /** Largest uncompressed export stream accepted. */
  maxStreamSize: number;
  /**
   * Largest uncompressed/compressed ratio accepted above `ratioFloor` (a zip bomb has a huge
   * one: a small file that costs a lot of time to read).
   */
  maxRatio: number;
  /**
   * Streams up to this many bytes are accepted at any ratio: a big value (a derivation with a
   * 256 MB attribute) compresses beyond any ratio a zip bomb would need, and reading this much
   * costs about a second, whatever the file's size.
   */
  ratioFloor: number;
  /** Largest zstd window (log2); 27 is stock zstd's default limit. */
  maxWindowLog: number;
  /** Limits of the export stream reader (paths, references, NAR structure, kept file size). */
  export: Partial<ExportLimits>;
  /**
   * Most distinct paths the bundle may refer to without holding them (each must then be valid in
   * the target store: asked in one query at the end), and most bytes of their names.
   */
  maxMissingReferences: number;
  maxMissingReferenceBytes: number;
}

/**
 * The largest .drv (or other single file) the reader holds whole by default: 512 MiB, room for a
 * 256 MB attribute. The reader cannot know a NAR is a .drv's before its path, which follows it, so
 * any single-file NAR up to this size is held: it bounds what a hostile bundle can make it hold,
 * and a 1 GiB file of zeros still streams through.
 */
export const MAX_KEPT_FILE = 2 ** 29;

/**
 * The default bound on a bundle's uncompressed size: what an import writes to the temp dir (its
 * verified stream) and then to the store. Overridable (`--max-size`; docs/security.md, Limits).
 */
export const DEFAULT_MAX_STREAM_SIZE = 64 * 1024 ** 3;

/** Defaults: generous for real closures (drv closures compress about 20×), tight for bombs. */
export const DEFAULT_READER_LIMITS: Readonly<ReaderLimits> = Object.freeze({
  maxManifestSize: DEFAULT_MAX_MANIFEST_SIZE,
  maxStreamSize: DEFAULT_MAX_STREAM_SIZE,
  maxRatio: 1000,
  ratioFloor: 2 ** 30,
  maxWindowLog: DEFAULT_MAX_WINDOW_LOG,
  // A .drv is held whole to be checked and relocated: one with a big attribute is as big. Held
  // one entry at a time (and only up to this size), so memory stays bounded by it.
  export: Object.freeze({ keepFileUpTo: MAX_KEPT_FILE }),
  maxMissingReferences: 100_000,
  maxMissingReferenceBytes: 32 * 1024 * 1024,
});

/**
 * What a writer checks before it calls a bundle done: that its readers, with `limits`, would
 * accept it. `entries` are the limits of single paths (as `entryLimitProblem` found them while
 * writing); throws a LimitError naming the first problem.
 */
export function checkWritten(
  manifest: BundleManifest,
  limits: ReaderLimits,
  entries: readonly string[] = [],
): void {
  try {
    checkSizeLimits(manifest, limits);
    const maxPaths = limits.export.maxPaths ?? DEFAULT_EXPORT_LIMITS.maxPaths;
    if (manifest.paths > maxPaths)
      throw new LimitError(`the bundle holds ${manifest.paths} paths, more than the limit of ${maxPaths}`);
    if (entries.length > 0) throw new LimitError(entries[0]!);
  } catch (e) {
    if (!(e instanceof LimitError)) throw e;
    throw new LimitError(`the bundle was not written, as its readers would refuse it: ${e.message}`);
  }
}

/**
 * Why a path of `kind`, with `references` and a NAR of `narSize` bytes (`fileSize` when it is one
 * regular file), breaks the reader's `limits`; undefined when it does not.
 */
export function entryLimitProblem(
  entry: {
    path: string;
    kind: ObjectKind;
    references: readonly string[];
    /** Its NAR's size, and the size of the file when it is one (else the NAR's size is taken). */
    narSize: number;
    fileSize: number | undefined;
  },
  limits: ReaderLimits,
): string | undefined {
  const lim = { ...DEFAULT_EXPORT_LIMITS, ...limits.export };
  if (entry.references.length > lim.maxReferences)
    return `'${entry.path}' has ${entry.references.length} references, more than the limit of ${lim.maxReferences}`;
  if (entry.path.length > lim.maxPathLength)
    return `'${entry.path}' is longer than the limit of ${lim.maxPathLength} bytes`;
  if (entry.kind === 'drv' && (entry.fileSize ?? entry.narSize) > lim.keepFileUpTo)
    return `'${entry.path}' is larger than the limit of ${lim.keepFileUpTo} bytes for a .drv`;
  return undefined;
}

/**
 * How to raise the size limit, as `names` spells it (`raise it with --max-size`), or, for a front
 * end with no such option (the actions), what the limit is for.
 */
export function maxSizeAdvice(names?: OptionNames): string {
  return offers(names, 'maxSize')
    ? `raise it with ${optionName(names, 'maxSize')}`
    : "the limit keeps a plan from filling the runner's disk, and no input raises it";
}

/**
 * Refuses, before decompressing, a stream whose recorded size breaks the limits; the message says
 * how to raise the size limit (maxSizeAdvice).
 */
export function checkSizeLimits(manifest: BundleManifest, limits: ReaderLimits, names?: OptionNames): void {
  const { size, compressedSize } = manifest.stream;
  if (size > limits.maxStreamSize)
    throw new LimitError(
      `the bundle's export stream is ${size} bytes, more than the limit of ${limits.maxStreamSize} bytes (${maxSizeAdvice(names)})`,
    );
  if (size > limits.ratioFloor && size > compressedSize * limits.maxRatio)
    throw new LimitError(
      `the bundle decompresses ${compressedSize} bytes to ${size} (ratio ${Math.round(size / compressedSize)}), more than the limit of ${limits.maxRatio}: refusing a possible zip bomb`,
    );
}

/** The export reader's limits for a bundle: the given ones, no looser than what its manifest records. */
export function exportLimitsFor(manifest: BundleManifest, limits: ReaderLimits): Partial<ExportLimits> {
  return {
    ...limits.export,
    // One more than the manifest says: the verifier refuses that entry as a lie ('bundle'), which
    // it is, rather than as a limit reached.
    maxPaths: Math.min(limits.export.maxPaths ?? DEFAULT_EXPORT_LIMITS.maxPaths, manifest.paths + 1),
    maxTotalBytes: Math.min(
      limits.export.maxTotalBytes ?? DEFAULT_EXPORT_LIMITS.maxTotalBytes,
      manifest.stream.size,
    ),
  };
}

/**
 * Refuses a manifest declaring more compressed bytes than zstd makes of its stream (at most
 * ZSTD_compressBound, plus a frame's header and checksum): nix-plan never writes one, and the
 * bytes it declares are what a private copy would have to hold.
 */
export function checkCompressedSize(manifest: BundleManifest, name: string): void {
  const { size, compressedSize } = manifest.stream;
  const bound = size + Math.floor(size / 256) + 128 * 1024 + 64;
  if (compressedSize > bound)
    throw new NixPlanError(
      'bundle',
      `plan bundle '${name}': its manifest's stream.compressedSize (${compressedSize}) is more than zstd makes of ${size} bytes (at most ${bound}): refusing it`,
    );
}
