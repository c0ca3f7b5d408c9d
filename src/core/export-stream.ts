// The `nix-store --export` stream: a streaming writer and a streaming, validating reader.
import { LimitError, MalformedError, NixPlanError } from './errors.js';
import { DEFAULT_NAR_LIMITS, readNar, tryReadFileNar, type NarLimits, type NarSummary } from './nar.js';
import { isStrictlySorted, parseStorePath, storeDirProblem } from './store-path.js';
import { ByteReader } from './wire.js';
import { ByteArena, ChunkBatcher, padLength, u64 } from './bytes.js';

/** The marker after each entry's NAR ("NIXE" read as a little-endian u64). */
export const EXPORT_MAGIC = 0x4558494e;

/** One store path to write into an export stream. */
export interface ExportEntry {
  path: string;
  /** Full store paths; written sorted and without duplicates, as Nix does. */
  references: string[];
  /** The deriver's full store path, or "" for none. */
  deriver: string;
  /** The path's NAR (e.g. `writeNar(tree)`, or `regularFileNar(bytes)` for a file in memory). */
  nar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** One store path read from an export stream. */
export interface ExportedPath {
  path: string;
  /** Sorted, as in the stream (the reader refuses unsorted or repeated references). */
  references: string[];
  /** "" when the stream names no deriver. */
  deriver: string;
  nar: NarSummary;
}

/** Bounds that keep a hostile export stream from exhausting memory or time. */
export interface ExportLimits {
  /** Most store paths in one stream. */
  maxPaths: number;
  /** Most references of one path. */
  maxReferences: number;
  /** Longest store path (of a path, a reference or a deriver), in bytes. */
  maxPathLength: number;
  /** Largest whole stream, in bytes. */
  maxTotalBytes: number;
  /**
   * Longest file path an entry may unpack to, in bytes: the store path (in the store's real
   * directory, see `ReadExportOptions.realStoreDir`) and the longest path inside its NAR. Nix 2.8
   * unpacks by whole paths, which the kernel refuses beyond PATH_MAX (4,096 with the NUL).
   */
  maxFilePathLength: number;
  /** Limits for each entry's NAR. */
  nar: NarLimits;
  /**
   * Keep the contents of single-file NARs up to this size (`.drv` and `toFile` texts), so a
   * verifier can parse and hash them in the same pass. Bounds memory per entry, not per stream.
   * Kept contents are views into blocks shared by many entries (`ByteArena`), or of the reader's
   * own buffers (`keptFiles: 'view'`): a caller that keeps a few of them long should copy those.
   */
  keepFileUpTo: number;
}

/** Defaults sized for real closures (nixpkgs' largest .drv files are a few MB). */
export const DEFAULT_EXPORT_LIMITS: Readonly<ExportLimits> = Object.freeze({
  maxPaths: 1_000_000,
  maxReferences: 100_000,
  maxPathLength: 4096,
  maxTotalBytes: 2 ** 45,
  maxFilePathLength: 4095,
  nar: DEFAULT_NAR_LIMITS,
  keepFileUpTo: 16 * 1024 * 1024,
});

/** Options of `readExport` beyond its limits. */
export interface ReadExportOptions {
  /** Every path must be in this store dir (default: the store dir of the first path). */
  storeDir?: string;
  /**
   * Where the store's files are, when not at `storeDir` (a chroot store): the prefix that counts
   * towards `maxFilePathLength`. Default: the store dir.
   */
  realStoreDir?: string;
  /**
   * Receives each entry's raw NAR bytes while they stream by (to write them to a binary cache,
   * or to rewrite them). A path is only known after its NAR, so chunks come before the entry
   * that owns them is yielded; `index` counts entries from 0. Chunks are views that stay valid
   * (the reader does not reuse buffers); copy nothing unless you must.
   */
  onNarBytes?: (chunk: Uint8Array, index: number) => void;
  /**
   * Receives every byte of the stream, in order and in large batches (for its sha256 and size
   * in the same pass); the last batch arrives before iteration completes.
   */
  onStreamBytes?: (chunk: Uint8Array) => void;
  /**
   * How the contents of kept files (`nar.file`, see `keepFileUpTo`) are handed out: 'copy'
   * (default) copies them into blocks shared by many entries (a `ByteArena`); 'view' does not
   * copy them at all, for a caller that copies or writes each file before the next entry: a view
   * pins the reader's buffer it is in (up to 1 MiB) for as long as it is held.
   */
  keptFiles?: 'copy' | 'view';
}

/**
 * Writes an export stream of `entries` in the given order (Nix imports dependencies first, so
 * pass a dependency order). Streams NARs through; holds nothing that grows with the closure.
 */
export async function* writeExport(
  entries: AsyncIterable<ExportEntry> | Iterable<ExportEntry>,
): AsyncGenerator<Uint8Array> {
  const out = new ChunkBatcher(BATCH);
  for await (const e of entries) {
    out.add(NEXT_ENTRY);
    if (Symbol.asyncIterator in e.nar)
      for await (const chunk of e.nar) {
        out.add(chunk);
        if (out.hasReady) yield* out.take();
      }
    else for (const chunk of e.nar) out.add(chunk);
    writeTrailer(e, out);
    if (out.hasReady) yield* out.take();
  }
  out.add(END_OF_STREAM);
  out.flush();
  yield* out.take();
}

/** Output chunks of `writeExport`: few enough that each costs little downstream (hashing, zstd). */
const BATCH = 256 * 1024;
const NEXT_ENTRY = u64(1);
const END_OF_STREAM = u64(0);

/**
 * Writes what follows an entry's NAR straight into the output: the magic, the path, the sorted
 * unique references, the deriver and the (empty) signature marker. Nothing is allocated per
 * string, which matters with tens of references for each of tens of thousands of entries.
 */
function writeTrailer(e: ExportEntry, out: ChunkBatcher): void {
  // Sorted and unique already when relocated or read from a store.
  const refs = isStrictlySorted(e.references) ? e.references : [...new Set(e.references)].sort(compareAscii);
  let size = 5 * 8; // magic, reference count, signature marker, the lengths of path and deriver
  size += wireSize(e.path) + wireSize(e.deriver);
  for (const r of refs) size += 8 + wireSize(r);
  const { bytes, at: start } = out.reserve(size);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = putU64(buf, start, EXPORT_MAGIC);
  at = putString(buf, at, e.path);
  at = putU64(buf, at, refs.length);
  for (const r of refs) at = putString(buf, at, r);
  at = putString(buf, at, e.deriver);
  at = putU64(buf, at, 0);
  if (at !== start + size)
    throw new NixPlanError('internal', `an export trailer took ${at - start} bytes, not ${size}`);
}

/** Bytes a wire string takes after its length: the UTF-8 bytes and their padding. */
function wireSize(s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  return n + padLength(n);
}

function putU64(buf: Buffer, at: number, n: number): number {
  buf.writeUInt32LE(n % 2 ** 32, at);
  buf.writeUInt32LE(Math.floor(n / 2 ** 32), at + 4);
  return at + 8;
}

/** A wire string (length, UTF-8 bytes, zero padding); returns the offset after it. */
function putString(buf: Buffer, at: number, s: string): number {
  const n = buf.write(s, at + 8, 'utf8');
  putU64(buf, at, n);
  const end = at + 8 + n;
  const pad = padLength(n);
  buf.fill(0, end, end + pad);
  return end + pad;
}

/** Characters of a store path's hash part that `hashKey` mixes. */
const HASH_KEY_CHARS = 8;

/** A number made of the first characters of the hash part at `at`, from a path's bytes or its string. */
function hashKey(path: Uint8Array | string, at: number): number {
  let k = 0;
  if (typeof path === 'string')
    for (let i = at; i < at + HASH_KEY_CHARS; i++) k = (k * 31 + path.charCodeAt(i)) | 0;
  else for (let i = at; i < at + HASH_KEY_CHARS; i++) k = (k * 31 + path[i]!) | 0;
  return k;
}

/** Whether `s` is the latin-1 reading of `bytes[start, end)`. */
function sameLatin1(s: string, bytes: Uint8Array, start: number, end: number): boolean {
  if (s.length !== end - start) return false;
  for (let i = s.length - 1; i >= 0; i--) if (s.charCodeAt(i) !== bytes[start + i]) return false;
  return true;
}

function compareAscii(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Streams the entries of an export stream, validating as it goes: every NAR (see `readNar`), the
 * per-entry magic, store paths (one store dir for all), sorted unique references, a deriver that
 * is "" or a `.drv` path, no legacy signature, no repeated path, the end marker and no trailing
 * bytes. Throws MalformedError naming the byte offset, or LimitError. Entries already yielded
 * were valid; the stream as a whole is only valid once iteration completes.
 */
export async function* readExport(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limits: Partial<ExportLimits> = DEFAULT_EXPORT_LIMITS,
  options: ReadExportOptions = {},
): AsyncGenerator<ExportedPath> {
  const lim: ExportLimits = { ...DEFAULT_EXPORT_LIMITS, ...limits };
  const reader = ByteReader.from(source, 'export stream', lim.maxTotalBytes);
  let storeDir = options.storeDir;
  if (storeDir !== undefined) {
    const problem = storeDirProblem(storeDir);
    if (problem !== undefined)
      throw new MalformedError(
        'export stream',
        undefined,
        `invalid store directory '${storeDir}': ${problem}`,
      );
  }
  // Each entry's path, as the one string every later mention of it shares: references name earlier
  // entries tens of times over, and one string per path instead of one per mention keeps tens of
  // megabytes of duplicates out of the heap of a large closure (and skips re-checking them).
  const seen = new Map<string, string>();
  // The same strings found from a path field's bytes without making a string of them first: by a
  // number made of the start of the hash part, then compared byte for byte (a clash or a miss
  // falls back to the string). References are most of the path fields of a closure.
  const byHash = new Map<number, string>();
  // Kept files share blocks: callers keep every entry's (relocation) or none past the entry.
  const arena = new ByteArena();
  const keep =
    options.keptFiles === 'view' ? (bytes: Uint8Array) => bytes : (bytes: Uint8Array) => arena.copy(bytes);
  const onNarBytes = options.onNarBytes;

  /** Where the hash part of a path field of `length` bytes starts, if the field is long enough to key. */
  const hashStart = (length: number): number | undefined =>
    storeDir !== undefined && length > storeDir.length + HASH_KEY_CHARS ? storeDir.length + 1 : undefined;

  /** The text of the path field at [from, to) of `bytes`, checked; `at` is where its length field started. */
  const checkPath = (
    bytes: Uint8Array,
    from: number,
    to: number,
    what: string,
    allowEmpty: boolean,
    at: number,
  ): string => {
    const start = hashStart(to - from);
    if (start !== undefined) {
      const known = byHash.get(hashKey(bytes, from + start));
      if (known !== undefined && sameLatin1(known, bytes, from, to)) return known;
    }
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('latin1');
    if (s === '' && allowEmpty) return s;
    const known = seen.get(s);
    if (known !== undefined) return known; // an entry's path: checked when it was read
    if (storeDir === undefined) {
      const dir = s.slice(0, Math.max(0, s.lastIndexOf('/')));
      const problem = storeDirProblem(dir);
      if (problem !== undefined)
        throw reader.error(`${what} ${JSON.stringify(s)} is not in a valid store directory (${problem})`, at);
      storeDir = dir;
    }
    try {
      parseStorePath(s, storeDir);
    } catch (e) {
      if (e instanceof MalformedError) throw reader.error(`bad ${what}: ${e.message}`, at);
      throw e;
    }
    return s;
  };
  // Path fields are read without waiting when buffered (see ByteReader's fast paths).
  const tryPath = (what: string, allowEmpty: boolean): string | undefined => {
    const at = reader.offset;
    const chunk = reader.tryReadWireSpan(lim.maxPathLength);
    return chunk === undefined
      ? undefined
      : checkPath(chunk, reader.spanStart, reader.spanEnd, what, allowEmpty, at);
  };
  const readPath = async (what: string, allowEmpty: boolean): Promise<string> => {
    const at = reader.offset;
    const len = await reader.readU64Unbounded();
    if (len > lim.maxPathLength)
      throw new LimitError(
        `export stream: ${what} at byte offset ${at} is longer than the limit of ${lim.maxPathLength} bytes`,
      );
    const bytes = await reader.readExact(len);
    await reader.readPadding(len);
    return checkPath(bytes, 0, bytes.length, what, allowEmpty, at);
  };

  const untapStream = options.onStreamBytes === undefined ? undefined : reader.tap(options.onStreamBytes);
  let complete = false;
  try {
    for (let index = 0; ; index++) {
      const markerAt = reader.offset;
      const marker = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
      if (marker === 0) break;
      if (marker !== 1)
        throw reader.error(
          `expected 0 or 1 before an entry, found ${marker === Infinity ? 'a value above 2^53' : marker}`,
          markerAt,
        );
      if (index >= lim.maxPaths)
        throw new LimitError(`export stream: more than ${lim.maxPaths} paths at byte offset ${markerAt}`);
      const onBytes = onNarBytes === undefined ? undefined : (chunk: Uint8Array) => onNarBytes(chunk, index);
      // A .drv or text that is buffered whole is read without awaiting anything.
      const nar =
        tryReadFileNar(reader, lim.nar, lim.keepFileUpTo, onBytes, keep) ??
        (await readNar(reader, lim.nar, lim.keepFileUpTo, onBytes, keep));
      const magicAt = reader.offset;
      const magic = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
      if (magic !== EXPORT_MAGIC) throw reader.error('bad export entry magic (expected "NIXE")', magicAt);
      const path = tryPath('path', false) ?? (await readPath('path', false));
      if (seen.has(path)) throw reader.error(`path '${path}' appears twice`);
      if (nar.longestPath !== undefined) {
        const dir = options.realStoreDir ?? storeDir ?? '';
        const fsLength = Buffer.byteLength(dir) + path.length - (storeDir?.length ?? 0) + nar.longestPath;
        if (fsLength > lim.maxFilePathLength)
          throw new LimitError(
            `export stream: '${path}' holds a file whose path in ${dir} is ${fsLength} bytes long, more than the ${lim.maxFilePathLength} bytes the kernel allows (PATH_MAX)`,
          );
      }
      seen.set(path, path);
      const start = hashStart(path.length);
      if (start !== undefined) byHash.set(hashKey(path, start), path);
      const countAt = reader.offset;
      const n = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
      if (n > lim.maxReferences)
        throw new LimitError(
          `export stream: '${path}' has more than ${lim.maxReferences} references (byte offset ${countAt})`,
        );
      const references: string[] = [];
      for (let i = 0; i < n; i++) {
        const at = reader.offset;
        const r = tryPath('reference', false) ?? (await readPath('reference', false));
        const last = references[references.length - 1];
        if (last !== undefined && compareAscii(last, r) >= 0)
          throw reader.error(`references of '${path}' are not sorted and unique at '${r}'`, at);
        references.push(r);
      }
      const deriverAt = reader.offset;
      const deriver = tryPath('deriver', true) ?? (await readPath('deriver', true));
      if (deriver !== '' && !deriver.endsWith('.drv'))
        throw reader.error(`deriver '${deriver}' of '${path}' is not a .drv path`, deriverAt);
      const sigAt = reader.offset;
      const sig = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
      if (sig !== 0)
        throw reader.error('expected 0 after the deriver (legacy signatures are not supported)', sigAt);
      yield { path, references, deriver, nar };
    }
    if (!(await reader.atEnd())) throw reader.error('trailing bytes after the end of the export stream');
    complete = true;
  } finally {
    untapStream?.(complete);
  }
}
