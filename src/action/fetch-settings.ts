// Where a fetching action (realise, promote, deploy) takes its plan from and what must prove it:
// an artifact of this run or another, a file, a shared directory; a digest, trusted keys, a
// maximum age. A plan from where anyone could have put it needs a proof or an explicit opt-out.
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
  /** Accept a plan nothing proves, on purpose (warned in the log and the summary). */
  readonly noCheckSigs: boolean;
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
  // Fail closed: a plan from where anyone could have put it must be proven to be ours.
  const origin = unprovenOrigin(source);
  if (origin !== undefined && digest === '' && trustedKeys.length === 0 && !noCheckSigs)
    throw new InputError(
      FetchInput.TrustedKeys,
      `is empty, and so is "${FetchInput.Digest}": nothing proves that a plan from ${origin} is the plan your ` +
        `workflow made; accepted: "${FetchInput.Digest}" (the plan action's digest output) or "${FetchInput.TrustedKeys}" ` +
        `(public keys the plan must be signed by), or "${FetchInput.NoCheckSigs}: true" to take it unproven on purpose`,
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
    maxAgeMs,
    maxAgeText: maxAgeText === '' ? undefined : maxAgeText,
  };
}
