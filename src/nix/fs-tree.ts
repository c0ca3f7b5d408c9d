// A NAR FileTree over real files, so a store path's NAR can be produced without running Nix.
import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { NixPlanError } from '../core/errors.js';
import { writeNar, type FileTree } from '../core/nar.js';

const SLASH = Buffer.from('/');
/** Files up to this size are read in one call: a drv closure is thousands of small files. */
const SMALL_FILE = 1024 * 1024;

async function* readWhole(p: Buffer): AsyncGenerator<Uint8Array> {
  yield await readFile(p);
}

/**
 * The FileTree of `path` (not following a symlink at `path` itself). Directory entries come
 * sorted by name bytes, as Nix sorts them; names are read as bytes, so non-UTF-8 names survive.
 * A regular file is executable when its owner may execute it (Nix tests S_IXUSR). Sockets,
 * FIFOs and devices are refused, as Nix refuses them.
 */
export async function fileTreeOf(path: string | Buffer): Promise<FileTree> {
  const p = typeof path === 'string' ? Buffer.from(path) : path;
  const st = await lstat(p);
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
    return { type: 'symlink', target: new Uint8Array(await readlink(p, { encoding: 'buffer' })) };
  if (st.isDirectory()) {
    return {
      type: 'directory',
      entries: async function* () {
        const names = await readdir(p, { encoding: 'buffer' });
        names.sort((a, b) => Buffer.compare(a, b));
        for (const name of names) {
          yield [name, await fileTreeOf(Buffer.concat([p, SLASH, name]))] as [Uint8Array, FileTree];
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
