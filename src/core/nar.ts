// NAR (Nix ARchive): a streaming, validating reader (the writer and the tokens both share are in
// nar-write.ts).
import { createHash } from 'node:crypto';
import { LimitError } from './errors.js';
import { digestBytes, sha256 } from './hash.js';
import {
  CLOSE,
  FILE_HEAD,
  FILE_HEAD_EXECUTABLE,
  MAGIC,
  entryNameProblem,
  regularFileNar,
  show,
} from './nar-write.js';
import { ByteReader } from './wire.js';
import { compareBytes, padLength } from './bytes.js';

/** Bounds that keep a hostile NAR from exhausting memory or time. */
export interface NarLimits {
  /** Largest regular file, in bytes (contents stream through; this bounds the length field). */
  maxFileSize: number;
  /** Most file system objects (files, symlinks, directories) in one NAR. */
  maxEntries: number;
  /** Deepest nesting: how many directories may contain an object (the top object is at depth 0). */
  maxDepth: number;
  /** Longest directory entry name, in bytes. */
  maxNameLength: number;
  /** Longest symlink target, in bytes (an empty target, or one with a NUL byte, is always refused). */
  maxTargetLength: number;
}

/**
 * Defaults: never looser than what any Nix we support unpacks. Names: NAME_MAX (255), which Nix
 * 2.34 also enforces while parsing. Symlink targets: 4,095 bytes (the kernel's PATH_MAX with its
 * NUL, and Nix 2.34's own bound), never empty (symlink(2) refuses one) and without NUL (2.34
 * refuses it; 2.8 would cut the target short and register a NAR hash the files do not have).
 * Depth: Nix 2.34.7+ refuses an object inside 64 or more directories (`narMaxDepth`), so at most
 * 63. The length of a whole path inside the NAR is checked once the store path is known (the
 * export stream names it after the NAR): see `NarSummary.longestPath` and `ExportLimits`.
 */
export const DEFAULT_NAR_LIMITS: Readonly<NarLimits> = Object.freeze({
  maxFileSize: 2 ** 40,
  maxEntries: 4_000_000,
  maxDepth: 63,
  maxNameLength: 255,
  maxTargetLength: 4095,
});

/** What reading a NAR established about it. */
export interface NarSummary {
  /** sha256 of the NAR bytes. */
  readonly narHash: Uint8Array;
  readonly narSize: number;
  /** For a NAR that is one regular file no bigger than `keepFileUpTo`: its bytes. */
  file?: { executable: boolean; contents: Uint8Array };
  /**
   * For a NAR that is one regular file (of any size): sha256 of its contents, so flat and text
   * content addresses can be checked without keeping a large file.
   */
  fileHash?: Uint8Array;
  /**
   * Bytes of the longest path inside the NAR, as `/name/name…` below its top (0 for a NAR of one
   * file or symlink): with the store path in front it must fit the kernel's PATH_MAX, which Nix
   * 2.8 unpacks with (see `ExportLimits.maxFilePathLength`).
   */
  longestPath?: number;
}

const MAX_TOKEN = 16; // longer than any NAR token ("nix-archive-1" is 13 bytes)

/** Reads a NAR token; anything longer than a token is a format error, not a limit. */
async function readToken(reader: ByteReader): Promise<string> {
  const at = reader.offset;
  const len = await reader.readU64Unbounded();
  if (len > MAX_TOKEN)
    throw reader.error(
      `expected a NAR token, found a string of ${len === Infinity ? 'more than 2^53' : len} bytes`,
      at,
    );
  const b = await reader.readExact(len);
  await reader.readPadding(len);
  return String.fromCharCode(...b);
}

async function expectToken(reader: ByteReader, expected: string): Promise<void> {
  const at = reader.offset;
  const got = await readToken(reader);
  if (got !== expected) throw reader.error(`expected '${expected}', found ${JSON.stringify(got)}`, at);
}

/** readToken without waiting, when the whole token is buffered (ByteReader's fast paths). */
function tryToken(reader: ByteReader): string | undefined {
  const b = reader.tryReadWireBytes(MAX_TOKEN);
  return b === undefined ? undefined : String.fromCharCode(...b);
}

/** expectToken without waiting: true once `expected` was read, false when it must be waited for. */
function tryExpectToken(reader: ByteReader, expected: string): boolean {
  const at = reader.offset;
  const got = tryToken(reader);
  if (got === undefined) return false;
  if (got !== expected) throw reader.error(`expected '${expected}', found ${JSON.stringify(got)}`, at);
  return true;
}

/** readLength without waiting, when the field is buffered. */
function tryLength(reader: ByteReader, max: number, what: string): number | undefined {
  const at = reader.offset;
  const len = reader.tryReadSmallU64();
  if (len !== undefined && len > max)
    throw new LimitError(`NAR: ${what} at byte offset ${at} is longer than the limit of ${max} bytes`);
  return len;
}

/** Reads a length field, refusing one above `max` with a LimitError that says what it measured. */
async function readLength(reader: ByteReader, max: number, what: string): Promise<number> {
  const at = reader.offset;
  const len = await reader.readU64Unbounded();
  if (len > max)
    throw new LimitError(`NAR: ${what} at byte offset ${at} is longer than the limit of ${max} bytes`);
  return len;
}

/**
 * Reads one NAR from `reader`, validating everything Nix validates and more (canonical token
 * order, strictly sorted legal names, zero padding, bounded lengths, depth and entry count).
 * Raw NAR bytes go to `onBytes` as they are read; file contents stream through without being
 * held, except a top-level regular file no bigger than `keepFileUpTo`, returned in `file` as
 * `keep` makes it of the reader's bytes (default: a copy of its own).
 * Throws MalformedError (with the byte offset) or LimitError.
 */
export async function readNar(
  reader: ByteReader,
  limits: NarLimits,
  keepFileUpTo: number,
  onBytes?: (chunk: Uint8Array) => void,
  keep: (bytes: Uint8Array) => Uint8Array = (bytes) => bytes.slice(),
): Promise<NarSummary> {
  const start = reader.offset;
  const hash = createHash('sha256');
  const untap = reader.tap(
    onBytes === undefined
      ? (c) => hash.update(c)
      : (c) => {
          hash.update(c);
          onBytes(c);
        },
  );
  let ok = false;
  try {
    const top = await readBody(reader, limits, keepFileUpTo, keep);
    untap(true);
    ok = true;
    const summary: NarSummary = {
      narHash: digestBytes(hash.digest('binary')),
      narSize: reader.offset - start,
    };
    if (top.file !== undefined) summary.file = top.file;
    if (top.fileHash !== undefined) summary.fileHash = top.fileHash;
    if (top.longestPath > 0) summary.longestPath = top.longestPath;
    return summary;
  } finally {
    if (!ok) untap(false);
  }
}

/**
 * `readNar` for the commonest NAR, one regular file to be kept (every .drv and text of a plan),
 * when all of it is in the reader's current chunk: recognised whole, as the exact bytes its
 * canonical form has, and read at once, without a token at a time or a wait. Undefined, having
 * read nothing, for anything else (the general reader then reads it, or says what is wrong).
 */
export function tryReadFileNar(
  reader: ByteReader,
  limits: NarLimits,
  keepFileUpTo: number,
  onBytes?: (chunk: Uint8Array) => void,
  keep: (bytes: Uint8Array) => Uint8Array = (bytes) => bytes.slice(),
): NarSummary | undefined {
  const b = reader.peekBuffered();
  const executable = !startsWith(b, FILE_HEAD, 0);
  const head = executable ? FILE_HEAD_EXECUTABLE : FILE_HEAD;
  if (executable && !startsWith(b, head, 0)) return undefined;
  const h = head.length;
  if (b.length < h + 8 || (b[h + 4]! | b[h + 5]! | b[h + 6]! | b[h + 7]!) !== 0) return undefined;
  const size = (b[h]! | (b[h + 1]! << 8) | (b[h + 2]! << 16) | (b[h + 3]! << 24)) >>> 0;
  if (size > keepFileUpTo || size > limits.maxFileSize) return undefined;
  const start = h + 8;
  const end = start + size;
  const padded = end + padLength(size);
  const total = padded + CLOSE.length;
  if (b.length < total || !startsWith(b, CLOSE, padded)) return undefined;
  for (let k = end; k < padded; k++) if (b[k] !== 0) return undefined;
  const nar = reader.tryReadExact(total)!; // the bytes just looked at, now consumed
  onBytes?.(nar);
  const contents = nar.subarray(start, end);
  return new KeptFileNar(total, { executable, contents: keep(contents) }, sha256(contents));
}

/**
 * The summary of a one-file NAR read whole, whose NAR hash is computed from the kept file when it
 * is first asked for: a .drv's or text's content address is its file's hash, and relocating or
 * importing a plan never asks for theirs (binary caches do).
 */
class KeptFileNar implements NarSummary {
  private hash: Uint8Array | undefined;

  constructor(
    readonly narSize: number,
    readonly file: { executable: boolean; contents: Uint8Array },
    readonly fileHash: Uint8Array,
  ) {}

  get narHash(): Uint8Array {
    return (this.hash ??= sha256(...regularFileNar(this.file.contents, this.file.executable)));
  }
}

/** True when `b` holds `prefix` at `at`. */
function startsWith(b: Uint8Array, prefix: Uint8Array, at: number): boolean {
  if (b.length - at < prefix.length) return false;
  for (let k = 0; k < prefix.length; k++) if (b[at + k] !== prefix[k]) return false;
  return true;
}

interface Frame {
  prev: Uint8Array | undefined;
  /** Bytes of this directory's path below the NAR's top (`/a/b`; 0 for the top). */
  pathLength: number;
}

async function readBody(
  reader: ByteReader,
  limits: NarLimits,
  keepFileUpTo: number,
  keep: (bytes: Uint8Array) => Uint8Array,
): Promise<{
  file?: { executable: boolean; contents: Uint8Array };
  fileHash?: Uint8Array;
  longestPath: number;
}> {
  const magicAt = reader.offset;
  const magic = tryToken(reader) ?? (await readToken(reader));
  if (magic !== MAGIC) throw reader.error('not a NAR (bad magic)', magicAt);

  let entries = 0;
  const stack: Frame[] = [];
  let result: { file?: { executable: boolean; contents: Uint8Array }; fileHash?: Uint8Array } = {};
  let longestPath = 0;
  /** Path length of the entry being read (its parent's, a slash and its name). */
  let entryPathLength = 0;

  // Reads "( type …" of one object. Leaves are read to their ")"; a directory pushes a frame.
  const readObject = async (): Promise<void> => {
    if (stack.length > limits.maxDepth)
      throw new LimitError(
        `NAR: objects nested deeper than ${limits.maxDepth} directories at byte offset ${reader.offset}`,
      );
    if (++entries > limits.maxEntries)
      throw new LimitError(`NAR: more than ${limits.maxEntries} entries at byte offset ${reader.offset}`);
    if (!tryExpectToken(reader, '(')) await expectToken(reader, '(');
    if (!tryExpectToken(reader, 'type')) await expectToken(reader, 'type');
    const typeAt = reader.offset;
    const type = tryToken(reader) ?? (await readToken(reader));
    if (type === 'regular') {
      let at = reader.offset;
      let tok = tryToken(reader) ?? (await readToken(reader));
      let executable = false;
      if (tok === 'executable') {
        executable = true;
        await expectToken(reader, '');
        at = reader.offset;
        tok = await readToken(reader);
      }
      if (tok !== 'contents') throw reader.error(`expected 'contents', found ${JSON.stringify(tok)}`, at);
      const size =
        tryLength(reader, limits.maxFileSize, 'a file') ??
        (await readLength(reader, limits.maxFileSize, 'a file'));
      if (stack.length === 0) {
        // The whole NAR is one file: hash its contents (content addresses need it), maybe keep it.
        if (size <= keepFileUpTo) {
          const contents = reader.tryReadExact(size) ?? (await reader.readExact(size));
          result = {
            file: { executable, contents: keep(contents) },
            fileHash: sha256(contents),
          };
        } else {
          const h = createHash('sha256');
          await reader.stream(size, (c) => h.update(c));
          result = { fileHash: digestBytes(h.digest('binary')) };
        }
      } else {
        await reader.stream(size, () => undefined);
      }
      if (!reader.tryReadPadding(size)) await reader.readPadding(size);
      if (!tryExpectToken(reader, ')')) await expectToken(reader, ')');
    } else if (type === 'symlink') {
      await expectToken(reader, 'target');
      const targetAt = reader.offset;
      const target = await readLengthPrefixed(reader, limits.maxTargetLength, 'a symlink target');
      if (target.length === 0) throw reader.error('a symlink with an empty target', targetAt);
      if (target.includes(0)) throw reader.error('a symlink target containing a NUL byte', targetAt);
      await expectToken(reader, ')');
    } else if (type === 'directory') {
      stack.push({ prev: undefined, pathLength: stack.length === 0 ? 0 : entryPathLength });
    } else {
      throw reader.error(`unknown file type ${JSON.stringify(type)}`, typeAt);
    }
  };

  await readObject();
  // `pendingEntryClose`: a child object just ended, so its parent's entry needs its ")".
  let pendingEntryClose = false;
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame === undefined) break;
    if (pendingEntryClose) {
      await expectToken(reader, ')');
      pendingEntryClose = false;
    }
    const at = reader.offset;
    const tok = await readToken(reader);
    if (tok === ')') {
      stack.pop();
      pendingEntryClose = stack.length > 0;
      continue;
    }
    if (tok !== 'entry') throw reader.error(`expected 'entry' or ')', found ${JSON.stringify(tok)}`, at);
    await expectToken(reader, '(');
    await expectToken(reader, 'name');
    const nameAt = reader.offset;
    const name = await readLengthPrefixed(reader, limits.maxNameLength, 'an entry name');
    const problem = entryNameProblem(name);
    if (problem !== undefined) throw reader.error(`directory entry with ${problem}`, nameAt);
    if (frame.prev !== undefined && compareBytes(frame.prev, name) >= 0)
      throw reader.error(
        `directory entries are not strictly sorted (${show(name)} after ${show(frame.prev)})`,
        nameAt,
      );
    frame.prev = name.slice(); // a copy: the view would pin the whole source chunk
    entryPathLength = frame.pathLength + 1 + name.length;
    if (entryPathLength > longestPath) longestPath = entryPathLength;
    await expectToken(reader, 'node');
    const depthBefore = stack.length;
    await readObject();
    pendingEntryClose = stack.length === depthBefore; // a leaf ended; a directory pushed a frame
  }
  return { ...result, longestPath };
}

async function readLengthPrefixed(reader: ByteReader, max: number, what: string): Promise<Uint8Array> {
  const len = await readLength(reader, max, what);
  const b = await reader.readExact(len);
  await reader.readPadding(len);
  return b;
}

/**
 * Reads a whole NAR from a stream of chunks and refuses trailing bytes: the summary of a NAR
 * file, or of `writeNar`'s output.
 */
export async function summariseNar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limits: NarLimits = DEFAULT_NAR_LIMITS,
  keepFileUpTo = 0,
  onBytes?: (chunk: Uint8Array) => void,
): Promise<NarSummary> {
  const reader = ByteReader.from(source, 'NAR');
  const summary = await readNar(reader, limits, keepFileUpTo, onBytes);
  if (!(await reader.atEnd())) throw reader.error('trailing bytes after the NAR');
  return summary;
}
