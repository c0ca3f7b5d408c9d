// Where a fetching action (realise, promote, deploy) takes its plan from and what must prove it:
// an artifact of this run or another, a file, a shared directory; a digest, trusted keys, a
// maximum age. A plan from where anyone could have put it needs a proof or an explicit opt-out of
// its own (`allow-unpinned-source`), apart from `no-check-sigs`, which says only that build outputs
// need no signature: a drvs-only plan proves its own bytes, but not that it is the plan you made.
import { parseDuration } from '../core/freshness.js';
import { DEFAULT_ARTIFACT_NAME, FetchInput, RunnerEnv } from './constants.js';
import {
  InputError,
  parseArtifactName,
  parseBoolean,
  parseRunId,
  parseTrustedKeys,
  type EnvReader,
  type InputReader,
} from './inputs.js';

/** Where a plan comes from: a published artifact (this run or another) or a file on disk. */
export type PlanSource =
  | { readonly kind: 'file'; readonly path: string }
  | {
      readonly kind: 'artifact';
      readonly name: string;
      readonly runId: number | undefined;
      readonly repository: string | undefined;
      readonly token: string | undefined;
      readonly artifactDir: string | undefined;
    };

/** Settings every fetching action shares. */
export interface FetchSettings {
  readonly source: PlanSource;
  /** `sha256:<hex>` the downloaded bundle must have (the root action's `digest` output). */
  readonly digest: string | undefined;
  readonly trustedKeys: string[];
  /** Accept build outputs no trusted signature proves, on purpose (warned in the log and the summary). */
  readonly noCheckSigs: boolean;
  /**
   * Where the plan comes from, when it is taken from there with nothing to pin it (no digest, no
   * trusted keys) because `allow-unpinned-source` said so: warned in the log and the summary.
   */
  readonly unpinned?: string | undefined;
  /** The oldest a plan may be (`max-age`), in milliseconds and as written. */
  readonly maxAgeMs: number | undefined;
  readonly maxAgeText: string | undefined;
}

/**
 * Where a plan comes from, when nothing but a digest or a signature can prove it is the plan this
 * workflow made: another run, a file on disk, a shared directory. Undefined for an artifact of
 * this run from GitHub's artifact service, which only this run's jobs can have uploaded.
 */
export function unprovenOrigin(source: PlanSource): string | undefined {
  if (source.kind === 'file') return `a bundle file ("${FetchInput.Bundle}")`;
  if (source.runId !== undefined) return `another workflow run ("${FetchInput.RunId}")`;
  if (source.artifactDir !== undefined) return `a shared directory ("${FetchInput.ArtifactDir}")`;
  return undefined;
}

/** Parses the inputs every fetching action shares. */
export function parseFetch(input: InputReader, env: EnvReader): FetchSettings {
  const bundle = input(FetchInput.Bundle);
  const name = input(FetchInput.ArtifactName);
  const runId = parseRunId(FetchInput.RunId, input(FetchInput.RunId));
  const token = input(FetchInput.GithubToken);
  const repository = input(FetchInput.Repository);
  // artifact-name has a default (which the runner passes like a given value): only another name conflicts.
  if (bundle !== '' && ((name !== '' && name !== DEFAULT_ARTIFACT_NAME) || runId !== undefined)) {
    throw new InputError(
      FetchInput.Bundle,
      `give either "${FetchInput.Bundle}" (a local file) or "${FetchInput.ArtifactName}", not both`,
    );
  }
  if (repository !== '' && !/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(repository)) {
    throw new InputError(FetchInput.Repository, `"${repository}" is not accepted; accepted: owner/name`);
  }
  if (repository !== '' && runId === undefined) {
    throw new InputError(
      FetchInput.Repository,
      `needs "${FetchInput.RunId}" (the run that published the plan)`,
    );
  }
  const digest = input(FetchInput.Digest);
  if (digest !== '' && !/^(sha256:)?[0-9a-fA-F]{64}$/.test(digest)) {
    throw new InputError(
      FetchInput.Digest,
      `"${digest}" is not accepted; accepted: sha256:<64 hex digits> (the plan's digest output)`,
    );
  }
  const artifactDir = input(FetchInput.ArtifactDir);
  const source: PlanSource =
    bundle !== ''
      ? { kind: 'file', path: bundle }
      : {
          kind: 'artifact',
          name: parseArtifactName(FetchInput.ArtifactName, name, DEFAULT_ARTIFACT_NAME),
          runId,
          repository:
            repository !== '' ? repository : runId !== undefined ? env(RunnerEnv.Repository) : undefined,
          token: token === '' ? undefined : token,
          artifactDir: artifactDir === '' ? undefined : artifactDir,
        };
  if (
    source.kind === 'artifact' &&
    runId !== undefined &&
    source.token === undefined &&
    source.artifactDir === undefined
  ) {
    throw new InputError(
      FetchInput.GithubToken,
      `needed with "${FetchInput.RunId}"; accepted: a token with \`actions: read\` (e.g. \${{ github.token }})`,
    );
  }
  const trustedKeys = parseTrustedKeys(FetchInput.TrustedKeys, input(FetchInput.TrustedKeys));
  const noCheckSigs = parseBoolean(FetchInput.NoCheckSigs, input(FetchInput.NoCheckSigs), false);
  const allowUnpinned = parseBoolean(
    FetchInput.AllowUnpinnedSource,
    input(FetchInput.AllowUnpinnedSource),
    false,
  );
  // Fail closed: a plan from where anyone could have put it must be proven to be ours. Not by
  // no-check-sigs: a plan of .drv files needs no signature to prove its bytes, and whoever can
  // write the source could still choose which such plan is built and activated.
  const origin = unprovenOrigin(source);
  const unpinned = origin !== undefined && digest === '' && trustedKeys.length === 0 ? origin : undefined;
  if (unpinned !== undefined && !allowUnpinned)
    throw new InputError(
      FetchInput.TrustedKeys,
      `is empty, and so is "${FetchInput.Digest}": nothing proves that a plan from ${unpinned} is the plan your ` +
        `workflow made; accepted: "${FetchInput.Digest}" (the plan action's digest output) or "${FetchInput.TrustedKeys}" ` +
        `(public keys the plan must be signed by), or "${FetchInput.AllowUnpinnedSource}: true" to take whatever ` +
        `plan is there on purpose ("${FetchInput.NoCheckSigs}" does not: it concerns build outputs, not where a plan comes from)`,
    );
  const maxAgeText = input(FetchInput.MaxAge);
  let maxAgeMs: number | undefined;
  try {
    maxAgeMs = maxAgeText === '' ? undefined : parseDuration(maxAgeText);
  } catch {
    throw new InputError(
      FetchInput.MaxAge,
      `"${maxAgeText}" is not a duration; accepted: a number and a unit (s, m, h, d, w), e.g. 12h, 7d or 1d12h`,
    );
  }
  return {
    source,
    digest: digest === '' ? undefined : digest,
    trustedKeys,
    noCheckSigs,
    unpinned,
    maxAgeMs,
    maxAgeText: maxAgeText === '' ? undefined : maxAgeText,
  };
}

/** The warning, in the log, for a plan taken from where nothing pins it (undefined: it is pinned). */
export function unpinnedWarning(settings: Pick<FetchSettings, 'unpinned'>): string | undefined {
  if (settings.unpinned === undefined) return undefined;
  return (
    `${FetchInput.AllowUnpinnedSource}: taking the plan from ${settings.unpinned} with neither ` +
    `"${FetchInput.Digest}" nor "${FetchInput.TrustedKeys}": whoever can write there chooses the plan`
  );
}
