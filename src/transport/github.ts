// The transport over GitHub's artifact service, through the real `@actions/artifact` client.
import { link, copyFile, mkdir, mkdtemp, readdir, rm, rename } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ArtifactClient } from '@actions/artifact';
import {
  checkDigest,
  digestFile,
  normaliseDigest,
  splitRepository,
  TransportError,
  type ArtifactSource,
  type ArtifactTransport,
  type DownloadedArtifact,
  type UploadedArtifact,
} from './transport.js';
import { requireRoom } from './room.js';

/** Where this run lives, for artifact URLs and for cross-run look-ups without a repository. */
export interface GitHubRunContext {
  /** `https://github.com` (GITHUB_SERVER_URL). */
  readonly serverUrl: string;
  /** `owner/name` (GITHUB_REPOSITORY). */
  readonly repository: string;
  /** The current run id (GITHUB_RUN_ID). */
  readonly runId: string;
  /** A scratch directory for staging uploads (RUNNER_TEMP). */
  readonly tempDir: string;
}

/** Pulls an HTTP status out of the client's errors (Twirp messages or Octokit's `status`). */
function statusOf(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'status' in error && typeof error.status === 'number') {
    return error.status;
  }
  const m = /\((\d{3})\)/.exec(error instanceof Error ? error.message : String(error));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** Turns a client error into one a user can act on, keeping the original as the cause. */
function explain(action: string, name: string, error: unknown): TransportError {
  const detail = error instanceof Error ? error.message : String(error);
  const status = statusOf(error);
  let hint = '';
  if (status === 409 || /already exists/i.test(detail)) {
    hint =
      'an artifact with this name was already uploaded in this run: give each plan job its own ' +
      'artifact-name (for example include ${{ matrix.system }})';
  } else if (/ACTIONS_RUNTIME_TOKEN|ACTIONS_RESULTS_URL/.test(detail)) {
    hint =
      'the runner gives the artifact service credentials only to JavaScript actions: use this action ' +
      'with `uses:` (not from a `run:` step), or set artifact-dir (a shared directory) or upload: false';
  } else if (status === 401 || status === 403) {
    hint =
      'the token was refused (expired, or without permission): same-run transfers use the runner token, ' +
      'which only JavaScript actions get; cross-run downloads need a github-token with `actions: read`';
  } else if (/download failed after \d+ retries/i.test(detail)) {
    hint =
      'the storage URL kept failing (an expired or unreachable signed URL, or a storage outage); ' +
      're-run the job, and check that the runner can reach GitHub artifact storage';
  } else if (status === 404 || (error instanceof Error && error.name === 'ArtifactNotFoundError')) {
    hint = 'not found: check the artifact name, run-id and repository, and that the artifact has not expired';
  }
  return new TransportError(
    `${action} artifact "${name}" failed: ${hint === '' ? detail : `${hint} (${detail})`}`,
    {
      cause: error,
    },
  );
}

/**
 * Uploads a bundle as a single-file artifact (no zip, no recompression: the bundle is already
 * zstd) and downloads it back, in this run or from another run, checking its digest.
 */
export class GitHubArtifactTransport implements ArtifactTransport {
  constructor(
    private readonly client: ArtifactClient,
    private readonly context: GitHubRunContext,
  ) {}

  async upload(
    file: string,
    name: string,
    options: { retentionDays?: number } = {},
  ): Promise<UploadedArtifact> {
    // With skipArchive the artifact takes the file's name, so stage it under `name` when needed.
    let staged = file;
    let stagingDir: string | undefined;
    if (basename(file) !== name) {
      await mkdir(this.context.tempDir, { recursive: true });
      stagingDir = await mkdtemp(join(this.context.tempDir, 'nix-plan-upload-'));
      staged = join(stagingDir, name);
      await link(file, staged).catch(() => copyFile(file, staged));
    }
    try {
      const { digest } = await digestFile(staged);
      let response;
      try {
        response = await this.client.uploadArtifact(name, [staged], stagingDir ?? join(staged, '..'), {
          skipArchive: true,
          compressionLevel: 0,
          ...(options.retentionDays === undefined ? {} : { retentionDays: options.retentionDays }),
        });
      } catch (e) {
        throw explain('uploading', name, e);
      }
      if (response.id === undefined) throw new TransportError(`uploading artifact "${name}" returned no id`);
      // The service hashes what it received; a difference means the bytes changed on the way.
      if (response.digest !== undefined) checkDigest(name, normaliseDigest(response.digest), digest);
      const { serverUrl, repository, runId } = this.context;
      return {
        name,
        id: response.id,
        size: response.size ?? 0,
        digest,
        url: `${serverUrl}/${repository}/actions/runs/${runId}/artifacts/${response.id}`,
      };
    } finally {
      if (stagingDir !== undefined) await rm(stagingDir, { recursive: true, force: true });
    }
  }

  async download(source: ArtifactSource, destDir: string): Promise<DownloadedArtifact> {
    const findBy = this.findBy(source);
    const options = findBy === undefined ? {} : { findBy };
    let artifact;
    try {
      ({ artifact } = await this.client.getArtifact(source.name, options));
    } catch (e) {
      throw explain('finding', source.name, e);
    }
    const expected = source.expectedDigest ?? artifact.digest;
    if (source.expectedDigest !== undefined && artifact.digest !== undefined && artifact.digest !== '') {
      const pinned = normaliseDigest(source.expectedDigest);
      if (normaliseDigest(artifact.digest) !== pinned) {
        throw new TransportError(
          `artifact "${source.name}" is not the plan that was pinned: it was uploaded with digest ` +
            `${normaliseDigest(artifact.digest)}, but digest ${pinned} was asked for (a different run or a re-upload?); nothing was downloaded`,
        );
      }
    }
    // A fresh directory, so the one file in it is the artifact whatever name the server gave it.
    await mkdir(destDir, { recursive: true });
    // Whoever uploaded it chose its size (another run's artifact, proven only once it is here by
    // trusted keys): one the disk has no room for is refused before a byte of it is downloaded.
    // The client reports the size as a number or, from the REST API, a bigint.
    const size = Number((artifact as { size?: number | bigint }).size ?? Number.NaN);
    await requireRoom(destDir, size, `artifact "${source.name}" is ${size} bytes`, 'nothing was downloaded');
    const landing = await mkdtemp(join(destDir, '.nix-plan-download-'));
    try {
      let result;
      try {
        result = await this.client.downloadArtifact(artifact.id, {
          path: landing,
          skipDecompress: true,
          ...(expected === undefined || expected === '' ? {} : { expectedHash: normaliseDigest(expected) }),
          ...options,
        });
      } catch (e) {
        throw explain('downloading', source.name, e);
      }
      const files = await readdir(landing);
      const only = files[0];
      if (files.length !== 1 || only === undefined) {
        throw new TransportError(
          `downloading artifact "${source.name}" produced ${files.length} files; expected the one plan bundle`,
        );
      }
      const got = await digestFile(join(landing, only));
      // Our own hash of the file on disk: covers the client's check and a server that sent no digest.
      checkDigest(source.name, got.digest, expected === '' ? undefined : expected);
      if (result.digestMismatch === true) {
        throw new TransportError(
          `artifact "${source.name}" arrived damaged (the client saw a digest mismatch)`,
        );
      }
      const path = join(destDir, basename(source.name));
      await rm(path, { force: true });
      await rename(join(landing, only), path);
      return { path, digest: got.digest, size: got.size };
    } finally {
      await rm(landing, { recursive: true, force: true });
    }
  }

  private findBy(
    source: ArtifactSource,
  ): { token: string; workflowRunId: number; repositoryOwner: string; repositoryName: string } | undefined {
    if (source.runId === undefined) return undefined;
    if (source.token === undefined || source.token === '') {
      throw new TransportError(
        `downloading artifact "${source.name}" from run ${source.runId} needs a github-token with \`actions: read\``,
      );
    }
    const { owner, repo } = splitRepository(source.repository ?? this.context.repository);
    return { token: source.token, workflowRunId: source.runId, repositoryOwner: owner, repositoryName: repo };
  }
}
