// The artifact transport: how a plan bundle travels between jobs, runs and machines.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { NixPlanError } from '../core/errors.js';

/** An artifact a transport stored: its name, size and `sha256:<hex>` digest (and GitHub id/url). */
export interface UploadedArtifact {
  readonly name: string;
  readonly size: number;
  /** `sha256:<hex>` of the uploaded bytes. */
  readonly digest: string;
  /** GitHub's artifact id (undefined for transports without one). */
  readonly id?: number;
  /** A URL a person can open to fetch it (undefined when there is none). */
  readonly url?: string;
}

/** Which artifact to fetch: by name in this run, or in another run of a repository. */
export interface ArtifactSource {
  readonly name: string;
  /** Another workflow run's id; omit for the current run. */
  readonly runId?: number;
  /** `owner/name` of the repository holding `runId` (default: the current repository). */
  readonly repository?: string;
  /** A token with `actions: read` on `repository`; needed with `runId`. */
  readonly token?: string;
  /** `sha256:<hex>` (or bare hex) the bytes must have; checked before the file is handed back. */
  readonly expectedDigest?: string;
  /**
   * The artifact is a plan bundle: a transport that copies a file someone else could have put
   * there (a shared directory) reads its head first and refuses a file that is not as long as its
   * manifest says before copying any of it.
   */
  readonly planBundle?: boolean;
}

/** A fetched artifact: the file's local path and the digest of the bytes that arrived. */
export interface DownloadedArtifact {
  readonly path: string;
  readonly digest: string;
  readonly size: number;
}

/** Moves one file per artifact. Implementations: GitHub's artifact service and a shared directory. */
export interface ArtifactTransport {
  /** Uploads `file` as the artifact `name` (a name can be used once per run). */
  upload(file: string, name: string, options?: { retentionDays?: number }): Promise<UploadedArtifact>;
  /** Downloads an artifact into `destDir` (created if missing); throws when its digest is wrong. */
  download(source: ArtifactSource, destDir: string): Promise<DownloadedArtifact>;
}

/** Error raised by transports; `code` is always 'transport'. */
export class TransportError extends NixPlanError {
  override readonly name = 'TransportError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('transport', message, options);
  }
}

/** Accepts `sha256:<hex>` or bare 64-digit hex; returns `sha256:<hex>` in lower case. */
export function normaliseDigest(digest: string): string {
  const m = /^(?:sha256:)?([0-9a-fA-F]{64})$/.exec(digest.trim());
  if (m?.[1] === undefined) {
    throw new TransportError(`not a sha256 digest: "${digest}" (expected sha256:<64 hex digits>)`);
  }
  return `sha256:${m[1].toLowerCase()}`;
}

/** Streams a file through sha256; returns its `sha256:<hex>` digest and size. */
export async function digestFile(path: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** Throws unless `actual` equals the expected digest (when there is one). */
export function checkDigest(name: string, actual: string, expected: string | undefined): void {
  if (expected === undefined) return;
  if (normaliseDigest(expected) !== actual) {
    throw new TransportError(
      `artifact "${name}" arrived damaged: its digest is ${actual} but ${normaliseDigest(expected)} was expected ` +
        `(truncated or altered in transit or storage); nothing was imported`,
    );
  }
}

/** Splits `owner/name`; throws naming the accepted form. */
export function splitRepository(repository: string): { owner: string; repo: string } {
  const m = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/.exec(repository);
  if (m?.[1] === undefined || m[2] === undefined) {
    throw new TransportError(`repository must be "owner/name", got "${repository}"`);
  }
  return { owner: m[1], repo: m[2] };
}
