// A transport over a directory (a shared disk, an NFS mount): for self-hosted runners and tests.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  checkDigest,
  TransportError,
  type ArtifactSource,
  type ArtifactTransport,
  type DownloadedArtifact,
  type UploadedArtifact,
} from './transport.js';

/** Names that stay inside their directory and are valid GitHub artifact names too. */
const SAFE_NAME = /^[^/\\"<>|*?:\r\n]+$/;

function checkName(name: string): void {
  if (!SAFE_NAME.test(name) || name === '.' || name === '..' || name.endsWith('.sha256')) {
    throw new TransportError(
      `invalid artifact name "${name}": use letters, digits, ".", "-" and "_" (no slashes, no ".sha256" suffix)`,
    );
  }
}

/** Copies `from` to `to`, hashing on the way; returns `sha256:<hex>` and the byte count. */
async function copyHashing(from: string, to: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done): void {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(from), tap, createWriteStream(to, { flags: 'wx' }));
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/**
 * Stores each artifact as `<root>/<runId>/<name>` with its digest in `<name>.sha256`. Like
 * GitHub, a name can be used once per run; the file appears atomically (hard link of a
 * finished temporary file), so a reader never sees half an upload.
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
    const dir = this.runDir(undefined);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.part`);
    try {
      const { digest, size } = await copyHashing(file, tmp);
      await writeFile(join(dir, `${name}.sha256`), `${digest}\n`);
      try {
        await link(tmp, join(dir, name));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new TransportError(
            `an artifact named "${name}" was already uploaded in run ${this.runId}: ` +
              `give each plan its own artifact-name`,
          );
        }
        throw e;
      }
      return { name, size, digest };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async download(source: ArtifactSource, destDir: string): Promise<DownloadedArtifact> {
    checkName(source.name);
    const from = join(this.runDir(source.runId), source.name);
    let recorded: string | undefined;
    try {
      recorded = (await readFile(`${from}.sha256`, 'utf8')).trim();
    } catch {
      throw new TransportError(
        `no artifact named "${source.name}" in ${this.runDir(source.runId)} (was the plan uploaded to this directory?)`,
      );
    }
    await mkdir(destDir, { recursive: true });
    const to = join(destDir, source.name);
    await rm(to, { force: true });
    try {
      const { digest, size } = await copyHashing(from, to);
      checkDigest(source.name, digest, recorded);
      checkDigest(source.name, digest, source.expectedDigest);
      return { path: to, digest, size };
    } catch (e) {
      await rm(to, { force: true });
      throw e;
    }
  }
}
