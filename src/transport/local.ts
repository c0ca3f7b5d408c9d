// A transport over a directory (a shared disk, an NFS mount): for self-hosted runners and tests.
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { link, lstat, mkdir, open, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { handleSource, readCheckedHead } from '../core/bundle/index.js';
import { pipeline } from 'node:stream/promises';
import {
  checkDigest,
  TransportError,
  type ArtifactSource,
  type ArtifactTransport,
  type DownloadedArtifact,
  type UploadedArtifact,
} from './transport.js';
import { requireRoom } from './room.js';

/** Names that stay inside their directory and are valid GitHub artifact names too. */
const SAFE_NAME = /^[^/\\"<>|*?:\r\n]+$/;

function checkName(name: string): void {
  if (!SAFE_NAME.test(name) || name === '.' || name === '..' || name.endsWith('.sha256')) {
    throw new TransportError(
      `invalid artifact name "${name}": use letters, digits, ".", "-" and "_" (no slashes, no ".sha256" suffix)`,
    );
  }
}

/**
 * Copies `from` (a path, or a file already open) to `to`, hashing on the way; returns
 * `sha256:<hex>` and the byte count. An open file is read from its start, at most `length` bytes,
 * and left open.
 */
async function copyHashing(
  from: string | FileHandle,
  to: string,
  length?: number,
): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done): void {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  const input =
    typeof from === 'string'
      ? createReadStream(from)
      : from.createReadStream({
          autoClose: false,
          start: 0,
          ...(length !== undefined && length > 0 && { end: length - 1 }),
        });
  await pipeline(input, tap, createWriteStream(to, { flags: 'wx' }));
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/**
 * Opens `path` as a directory itself (not a symlink to one: another job could plant it), and
 * returns it held open with the path to make its files by: `/proc/self/fd/N` where the system has
 * it (Linux), so a run directory swapped for a link after this check does not redirect a write.
 */
async function openDirectory(path: string): Promise<{ handle: FileHandle; at: string }> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR')
      throw new TransportError(
        `"${path}" is not a directory (a symlink or a file is there): refusing to use it`,
      );
    throw e;
  }
  try {
    const held = await handle.stat();
    const proc = `/proc/self/fd/${handle.fd}`;
    const viaProc = await stat(proc).catch(() => undefined);
    const at = viaProc?.ino === held.ino && viaProc.dev === held.dev ? proc : path;
    return { handle, at };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Refuses when `path` is no longer the directory held open as `handle` (it was moved or replaced). */
async function stillThere(path: string, handle: FileHandle): Promise<void> {
  const [held, now] = await Promise.all([handle.stat(), lstat(path).catch(() => undefined)]);
  if (now === undefined || now.ino !== held.ino || now.dev !== held.dev)
    throw new TransportError(
      `the run directory "${path}" was moved or replaced while the plan was uploaded: ` +
        'someone else writes to this artifact-dir, and readers would not find this upload; the upload failed',
    );
}

/**
 * Opens a regular file of a shared directory: a symlink is not followed (O_NOFOLLOW: one planted
 * there, even between a check and the open, is refused), a FIFO does not block the open
 * (O_NONBLOCK), and what was opened must be a regular file (fstat of the descriptor, the file read
 * afterwards) of at most `max` bytes.
 */
async function openRegular(path: string, max = Infinity): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP')
      throw new TransportError(`"${path}" is not a regular file (a symlink is there)`);
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new TransportError(`"${path}" is not a regular file`);
    if (st.size > max) throw new TransportError(`"${path}" is larger than ${max} bytes`);
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Reads a small regular file of a shared directory (see openRegular). */
async function readRegular(path: string, max: number): Promise<string> {
  const fh = await openRegular(path, max);
  try {
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Stores each artifact as `<root>/<runId>/<name>` with its digest in `<name>.sha256`. Like
 * GitHub, a name can be used once per run. Both files are written to temporary files created
 * exclusively (never through a planted symlink) and published with hard links, which never replace
 * what is there: a name already taken is refused without touching the first artifact's files, and
 * a reader never sees half an upload (the digest is published first, the bundle last).
 */
export class LocalDirectoryTransport implements ArtifactTransport {
  /**
   * @param root directory shared by the jobs (created on first upload)
   * @param runId the current run: uploads go there, downloads without `runId` read there
   */
  constructor(
    readonly root: string,
    readonly runId: number | string = 'local',
  ) {}

  private runDir(runId: number | string | undefined): string {
    return join(this.root, String(runId ?? this.runId));
  }

  async upload(file: string, name: string): Promise<UploadedArtifact> {
    checkName(name);
    const path = this.runDir(undefined);
    await mkdir(path, { recursive: true });
    const { handle, at: dir } = await openDirectory(path);
    const part = `.${name}.${randomBytes(6).toString('hex')}`;
    const tmp = join(dir, `${part}.part`);
    const tmpDigest = join(dir, `${part}.sha256.part`);
    const taken = (): TransportError =>
      new TransportError(
        `an artifact named "${name}" was already uploaded in run ${this.runId}: ` +
          `give each plan its own artifact-name`,
      );
    try {
      const { digest, size } = await copyHashing(file, tmp);
      await writeFile(tmpDigest, `${digest}\n`, { flag: 'wx' });
      // The digest first: once the bundle is there, so is what it must hash to.
      try {
        await link(tmpDigest, join(dir, `${name}.sha256`));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw taken();
        throw e;
      }
      try {
        await link(tmp, join(dir, name));
      } catch (e) {
        // Take back the digest just published (ours: the same file as our temporary one).
        const [ours, published] = await Promise.all([lstat(tmpDigest), lstat(join(dir, `${name}.sha256`))]);
        if (ours.ino === published.ino && ours.dev === published.dev)
          await unlink(join(dir, `${name}.sha256`));
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw taken();
        throw e;
      }
      // Published in the directory checked; readers look for it at its path.
      await stillThere(path, handle);
      return { name, size, digest };
    } finally {
      await rm(tmp, { force: true });
      await rm(tmpDigest, { force: true });
      await handle.close();
    }
  }

  async download(source: ArtifactSource, destDir: string): Promise<DownloadedArtifact> {
    checkName(source.name);
    const from = join(this.runDir(source.runId), source.name);
    let recorded: string;
    let bundle: FileHandle;
    try {
      recorded = (await readRegular(`${from}.sha256`, 1024)).trim();
      // The bundle itself must be a file there, not a link to one elsewhere: what is checked is
      // the file opened, and what is copied is read from that descriptor.
      bundle = await openRegular(from);
    } catch (e) {
      if (e instanceof TransportError) throw e;
      throw new TransportError(
        `no artifact named "${source.name}" in ${this.runDir(source.runId)} (was the plan uploaded to this directory?)`,
      );
    }
    const to = join(destDir, source.name);
    try {
      // Whoever shares the directory chose this file: a plan's head is checked and the room for it
      // before anything is copied (a sparse terabyte behind a valid head would fill the disk),
      // and no more than the length checked is copied, however the file grows meanwhile.
      const { size: length } = await bundle.stat();
      if (source.planBundle === true) await readCheckedHead(handleSource(bundle, source.name, length));
      await mkdir(destDir, { recursive: true });
      await requireRoom(destDir, length, `the artifact "${source.name}" is ${length} bytes`);
      await rm(to, { force: true });
      const { digest, size } = await copyHashing(bundle, to, length);
      checkDigest(source.name, digest, recorded);
      checkDigest(source.name, digest, source.expectedDigest);
      return { path: to, digest, size };
    } catch (e) {
      // What failed is the error to report, not a failure to clean up after it.
      await rm(to, { force: true }).catch(() => undefined);
      throw e;
    } finally {
      await bundle.close();
    }
  }
}
