// Getting a published plan onto this runner: from an artifact (this run or another) or a local file.
import { checkBundleFile } from '../app/private-copy.js';
import { NixPlanError } from '../core/errors.js';
import { checkDigest, digestFile, type ArtifactTransport } from '../transport/transport.js';
import type { FetchSettings } from './fetch-settings.js';

/** A plan bundle on local disk and the digest of its bytes. */
export interface FetchedPlan {
  readonly path: string;
  readonly digest: string;
  readonly size: number;
  /** Artifact name, or the file path for a local bundle. */
  readonly label: string;
  /** The workflow run the artifact was published by, when it is another run's (`run-id`). */
  readonly run?: { readonly id: number; readonly repository: string | undefined } | undefined;
}

/** Downloads (or locates) the plan; throws before anything is imported if its digest is wrong. */
export async function fetchPlan(
  settings: FetchSettings,
  transport: () => ArtifactTransport,
  destDir: string,
): Promise<FetchedPlan> {
  const { source, digest } = settings;
  if (source.kind === 'file') {
    // Its head first: a valid head before a sparse terabyte is refused before it is hashed.
    await checkBundleFile(source.path);
    let got;
    try {
      got = await digestFile(source.path);
    } catch (e) {
      throw new NixPlanError('usage', `cannot read the bundle "${source.path}": ${(e as Error).message}`);
    }
    checkDigest(source.path, got.digest, digest);
    return { path: source.path, ...got, label: source.path };
  }
  const downloaded = await transport().download(
    {
      name: source.name,
      planBundle: true,
      ...(source.runId === undefined ? {} : { runId: source.runId }),
      ...(source.repository === undefined ? {} : { repository: source.repository }),
      ...(source.token === undefined ? {} : { token: source.token }),
      ...(digest === undefined ? {} : { expectedDigest: digest }),
    },
    destDir,
  );
  return {
    ...downloaded,
    label: source.name,
    ...(source.runId !== undefined && { run: { id: source.runId, repository: source.repository } }),
  };
}
