// A NAR FileTree over real files, so a store path's NAR can be produced without running Nix.
import { createReadStream, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { NixPlanError } from '../core/errors.js';
import { regularFileNar, writeNar, type FileTree } from '../core/nar-write.js';

const SLASH = Buffer.from('/');
/** Files up to this size are read in one call: a drv closure is thousands of small files. */
const SMALL_FILE = 1024 * 1024;

// The file system is read with synchronous calls: store files are small and local, and each
// `fs.promises` call is a round trip through libuv's thread pool (shared with zstd), which for
// tens of thousands of files cost far more than the reads themselves. Large files still stream.

/** A whole small file as a one-chunk stream, read when iteration starts (not before). */
function readWhole(p: Buffer): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => {
      let read = false;
      return {
        next: (): Promise<IteratorResult<Uint8Array>> => {
          if (read) return Promise.resolve({ done: true, value: undefined });
          read = true;
          try {
            return Promise.resolve({ done: false, value: readFileSync(p) });
          } catch (e) {
            return Promise.reject(e instanceof Error ? e : new Error(String(e)));
          }
        },
      };
    },
  };
}

/**
 * The FileTree of `path` (not following a symlink at `path` itself). Directory entries come
 * sorted by name bytes, as Nix sorts them; names are read as bytes, so non-UTF-8 names survive.
 * A regular file is executable when its owner may execute it (Nix tests S_IXUSR). Sockets,
 * FIFOs and devices are refused, as Nix refuses them.
 */
export function fileTreeOf(path: string | Buffer): Promise<FileTree> {
  try {
    return Promise.resolve(fileTreeSync(typeof path === 'string' ? Buffer.from(path) : path));
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

function fileTreeSync(p: Buffer): FileTree {
  const st = lstatSync(p);
  if (st.isFile()) {
    return {
      type: 'regular',
      executable: (st.mode & 0o100) !== 0,
      size: st.size,
      contents: () =>
        st.size <= SMALL_FILE ? readWhole(p) : (createReadStream(p) as AsyncIterable<Uint8Array>),
    };
  }
  if (st.isSymbolicLink())
    return { type: 'symlink', target: new Uint8Array(readlinkSync(p, { encoding: 'buffer' })) };
  if (st.isDirectory()) {
    return {
      type: 'directory',
      entries: async function* () {
        const names = readdirSync(p, { encoding: 'buffer' });
        names.sort((a, b) => Buffer.compare(a, b));
        // One entry per turn: a huge directory still lets the compressor's callbacks run.
        for (const name of names) {
          yield [name, fileTreeSync(Buffer.concat([p, SLASH, name]))] as [Uint8Array, FileTree];
          await Promise.resolve();
        }
      },
    };
  }
  throw new NixPlanError(
    'malformed',
    `'${p.toString('utf8')}' is neither a regular file, a directory nor a symlink; a NAR cannot hold it`,
  );
}

/** The NAR of a file, directory or symlink on disk, streamed (what `nix-store --dump` writes). */
export async function* dumpPath(path: string | Buffer): AsyncGenerator<Uint8Array> {
  yield* writeNar(await fileTreeOf(path));
}

/**
 * The NAR of `path` like `dumpPath`, but a small regular file (every `.drv` and text) is read at
 * once and returned as the chunks of its NAR, with no generator or promise per file.
 */
export function narOf(path: string | Buffer): Iterable<Uint8Array> | AsyncIterable<Uint8Array> {
  const p = typeof path === 'string' ? Buffer.from(path) : path;
  const st = lstatSync(p);
  if (st.isFile() && st.size <= SMALL_FILE) {
    const bytes = readFileSync(p);
    if (bytes.length !== st.size)
      throw new NixPlanError('malformed', `'${p.toString('utf8')}' changed size while it was read`);
    return regularFileNar(
      new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
      (st.mode & 0o100) !== 0,
    );
  }
  return dumpPath(p);
}
