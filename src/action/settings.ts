// Typed settings of the three actions, parsed once from their inputs; a bad input throws naming
// the input and what it accepts, before anything runs.
import { assertSignable } from '../app/signing-policy.js';
import { NixPlanError } from '../core/errors.js';
import { parseDuration } from '../core/freshness.js';
import { parsePublicKey, parseSecretKey } from '../core/signing.js';
import { splitShellWords } from '../core/shell-words.js';
import { storeDirProblem } from '../core/store-path.js';
import { INCLUDE_KINDS, MAX_LEVEL, MIN_LEVEL, type Include } from '../core/bundle/index.js';
import {
  DEFAULT_ARTIFACT_NAME,
  FetchInput,
  PlanInput,
  PromoteInput,
  RealiseInput,
  RunnerEnv,
} from './constants.js';
import { MAX_JOBS, type MatrixShape, type Shard, parseShard } from './matrix.js';

/** Reads one input as `core.getInput` does: trimmed, '' when not given. */
export type InputReader = (name: string) => string;
/** Reads one variable of the runner's environment. */
export type EnvReader = (name: string) => string | undefined;

/** An action input with a value the action cannot use. */
export class InputError extends NixPlanError {
  override readonly name = 'InputError';
  constructor(
    readonly input: string,
    detail: string,
  ) {
    super('usage', `input "${input}": ${detail}`);
  }
}

const TRUE = ['true', 'True', 'TRUE'];
const FALSE = ['false', 'False', 'FALSE'];
// Characters GitHub refuses in artifact names (NTFS-safe names), plus path separators.
const BAD_NAME_CHARS = /["<>|*?:\r\n\\/]/;

/** One value per line; blank lines and `#` comments dropped. */
export function parseLines(value: string): string[] {
  return value
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** A YAML 1.2 boolean (what `core.getBooleanInput` accepts), or `fallback` when empty. */
export function parseBoolean(input: string, value: string, fallback: boolean): boolean {
  if (value === '') return fallback;
  if (TRUE.includes(value)) return true;
  if (FALSE.includes(value)) return false;
  throw new InputError(input, `"${value}" is not a boolean; accepted: true or false`);
}

/** An integer in [min, max], or `fallback` when empty. */
export function parseInteger<T extends number | undefined>(
  input: string,
  value: string,
  min: number,
  max: number,
  fallback: T,
): number | T {
  if (value === '') return fallback;
  if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InputError(input, `"${value}" is not accepted; accepted: an integer from ${min} to ${max}`);
  }
  return Number(value);
}

/** One of `choices`, or `fallback` when empty. */
export function parseChoice<T extends string>(
  input: string,
  value: string,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === '') return fallback;
  const found = choices.find((c) => c === value);
  if (found === undefined)
    throw new InputError(input, `"${value}" is not accepted; accepted: ${choices.join(', ')}`);
  return found;
}

/** An artifact name GitHub accepts (and that is safe as a file name). */
export function parseArtifactName(input: string, value: string, fallback: string): string {
  const name = value === '' ? fallback : value;
  if (BAD_NAME_CHARS.test(name) || name === '.' || name === '..' || name.length > 255) {
    throw new InputError(
      input,
      `"${name}" is not a valid artifact name; accepted: up to 255 characters without " : < > | * ? \\ / or newlines`,
    );
  }
  return name;
}

/** A store dir (a realm such as /beta/store), or undefined when empty. */
export function parseStoreDir(input: string, value: string): string | undefined {
  if (value === '') return undefined;
  const problem = storeDirProblem(value);
  if (problem !== undefined) {
    throw new InputError(
      input,
      `"${value}" is not a store dir (${problem}); accepted: an absolute path like /beta/store`,
    );
  }
  return value;
}

/** A Nix secret key (`NAME:base64`), validated without ever echoing it. */
export function parseSigningKey(input: string, value: string): string | undefined {
  if (value === '') return undefined;
  try {
    parseSecretKey(value);
  } catch (e) {
    const why = e instanceof NixPlanError ? e.message.replace(/'[^']*'/g, '(hidden)') : 'unreadable';
    throw new InputError(
      input,
      `not a usable Nix secret key (${why}); accepted: the contents of a key file from ` +
        '`nix-plan keygen NAME` or `nix-store --generate-binary-cache-key`, passed from a secret',
    );
  }
  return value;
}

/**
 * Public keys (`NAME:base64`), one per line or separated by spaces, `#` comments allowed. A
 * value that holds no key (only comments) is refused: asking for signatures never means none.
 * (An empty input cannot be told from an absent one: the fetching actions' origin rule covers it.)
 */
export function parseTrustedKeys(input: string, value: string): string[] {
  const keys = value
    .split('\n')
    .map((l) => l.replace(/#.*$/, ''))
    .flatMap((l) => l.split(/\s+/))
    .filter((k) => k !== '');
  if (keys.length === 0 && value.trim() !== '')
    throw new InputError(input, 'holds no key; accepted: public keys (NAME:base64), one per line');
  for (const key of keys) {
    try {
      parsePublicKey(key);
    } catch (e) {
      throw new InputError(
        input,
        `"${key}" is not a public key (${e instanceof Error ? e.message : String(e)}); accepted: NAME:base64 keys as in trusted-public-keys`,
      );
    }
  }
  return keys;
}

/** The matrix fan-out: `per-root` (one job per root), `single`, or a number of jobs up to 256. */
export function parseMatrixShape(input: string, value: string): MatrixShape {
  if (value === '' || value === 'per-root') return { kind: 'per-root' };
  if (value === 'single') return { kind: 'single' };
  if (/^\d+$/.test(value) && Number(value) >= 1 && Number(value) <= MAX_JOBS) {
    return { kind: 'jobs', count: Number(value) };
  }
  throw new InputError(
    input,
    `"${value}" is not accepted; accepted: per-root, single, or a number of jobs from 1 to ${MAX_JOBS}`,
  );
}

/** Settings of the root action. */
export interface PlanSettings {
  /** Flake installables (or anything `nix build` accepts) to evaluate. */
  readonly installables: string[];
  /** `.drv` paths given directly (already instantiated). */
  readonly drvPaths: string[];
  /** A Nix file to instantiate (non-flake), with `attributes`. */
  readonly file: string | undefined;
  readonly attributes: string[];
  readonly include: Include;
  readonly relocateTo: string | undefined;
  readonly compressionLevel: number | undefined;
  readonly signingKey: string | undefined;
  readonly artifactName: string;
  readonly retentionDays: number | undefined;
  readonly upload: boolean;
  readonly matrix: MatrixShape;
  /** A shared directory to publish to instead of GitHub's artifact service (self-hosted runners). */
  readonly artifactDir: string | undefined;
}

/** Parses the root action's inputs. */
export function parsePlanSettings(input: InputReader): PlanSettings {
  const lines = parseLines(input(PlanInput.Installables));
  const file = input(PlanInput.File) === '' ? undefined : input(PlanInput.File);
  const attributes = parseLines(input(PlanInput.Attributes));
  if (lines.length === 0 && file === undefined) {
    throw new InputError(
      PlanInput.Installables,
      `nothing to plan; accepted: "${PlanInput.Installables}" (flake installables or .drv paths, one per line) ` +
        `or "${PlanInput.File}" with optional "${PlanInput.Attributes}"`,
    );
  }
  if (lines.length > 0 && file !== undefined) {
    throw new InputError(
      PlanInput.File,
      `give either "${PlanInput.Installables}" or "${PlanInput.File}", not both`,
    );
  }
  if (attributes.length > 0 && file === undefined) {
    throw new InputError(
      PlanInput.Attributes,
      `needs "${PlanInput.File}" (the Nix file the attributes are in)`,
    );
  }
  const isDrvPath = (l: string): boolean => l.startsWith('/') && l.endsWith('.drv');
  return {
    installables: lines.filter((l) => !isDrvPath(l)),
    drvPaths: lines.filter(isDrvPath),
    file,
    attributes,
    include: parseChoice(PlanInput.Include, input(PlanInput.Include), INCLUDE_KINDS, 'drvs'),
    relocateTo: parseStoreDir(PlanInput.RelocateTo, input(PlanInput.RelocateTo)),
    compressionLevel: parseInteger(
      PlanInput.CompressionLevel,
      input(PlanInput.CompressionLevel),
      MIN_LEVEL,
      MAX_LEVEL,
      undefined,
    ),
    signingKey: parseSigningKey(PlanInput.SigningKey, input(PlanInput.SigningKey)),
    artifactName: parseArtifactName(
      PlanInput.ArtifactName,
      input(PlanInput.ArtifactName),
      DEFAULT_ARTIFACT_NAME,
    ),
    retentionDays: parseInteger(PlanInput.RetentionDays, input(PlanInput.RetentionDays), 1, 90, undefined),
    upload: parseBoolean(PlanInput.Upload, input(PlanInput.Upload), true),
    matrix: parseMatrixShape(PlanInput.Matrix, input(PlanInput.Matrix)),
    artifactDir: input(PlanInput.ArtifactDir) === '' ? undefined : input(PlanInput.ArtifactDir),
  };
}

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
  const runId = parseInteger(
    FetchInput.RunId,
    input(FetchInput.RunId),
    1,
    Number.MAX_SAFE_INTEGER,
    undefined,
  );
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

/** Settings of `realise`. */
export interface RealiseSettings extends FetchSettings {
  /** Roots to build (drv paths, attributes or installables as recorded); empty: all (or the shard's). */
  readonly roots: string[];
  readonly shard: Shard | undefined;
  readonly outLink: string | undefined;
  /** Extra arguments for the Nix build (`--max-jobs 4`, `--option …`), split as a shell would. */
  readonly nixArgs: string[];
  /** Accept a plan older than the one last realised to `outLink`. */
  readonly allowDowngrade: boolean;
}

/** Parses `realise`'s inputs. */
export function parseRealiseSettings(input: InputReader, env: EnvReader): RealiseSettings {
  const fetch = parseFetch(input, env);
  const shardText = input(RealiseInput.Shard);
  let shard: Shard | undefined;
  try {
    shard = shardText === '' ? undefined : parseShard(shardText);
  } catch (e) {
    throw new InputError(
      RealiseInput.Shard,
      `${e instanceof Error ? e.message : String(e)}; accepted: INDEX/COUNT such as 3/16 (from the plan's matrix output)`,
    );
  }
  const outLink = input(RealiseInput.OutLink);
  return {
    ...fetch,
    roots: parseLines(input(RealiseInput.Roots)),
    shard,
    outLink: outLink === '' ? undefined : outLink,
    nixArgs: parseNixArgs(RealiseInput.NixArgs, input(RealiseInput.NixArgs)),
    allowDowngrade: parseBoolean(RealiseInput.AllowDowngrade, input(RealiseInput.AllowDowngrade), false),
  };
}

/** Extra Nix arguments split as a shell would (`--option extra-substituters "a b"`), nothing expanded. */
export function parseNixArgs(input: string, value: string): string[] {
  try {
    return splitShellWords(value);
  } catch (e) {
    throw new InputError(
      input,
      `${e instanceof Error ? e.message.replace(/^the arguments: /, '') : String(e)}; accepted: arguments as a shell would split them (quotes and backslashes, no expansion)`,
    );
  }
}

/** Settings of `promote`. */
export interface PromoteSettings extends FetchSettings {
  /** The realm to promote into. */
  readonly to: string;
  readonly signingKey: string | undefined;
  readonly promotedName: string;
  readonly retentionDays: number | undefined;
  readonly upload: boolean;
  readonly artifactDir: string | undefined;
}

/** `plan.nixplan` promoted to `/beta/store` is published as `plan-beta-store.nixplan`. */
export function promotedArtifactName(source: string, to: string): string {
  const stem = source.endsWith('.nixplan') ? source.slice(0, -'.nixplan'.length) : source;
  return `${stem}-${to.replace(/^\/+/, '').replace(/\//g, '-')}.nixplan`;
}

/** Parses `promote`'s inputs. */
export function parsePromoteSettings(input: InputReader, env: EnvReader): PromoteSettings {
  const fetch = parseFetch(input, env);
  const to = parseStoreDir(PromoteInput.To, input(PromoteInput.To));
  if (to === undefined)
    throw new InputError(
      PromoteInput.To,
      'is required; accepted: the target realm, an absolute store dir like /beta/store',
    );
  const sourceName =
    fetch.source.kind === 'artifact'
      ? fetch.source.name
      : (fetch.source.path.split('/').pop() ?? DEFAULT_ARTIFACT_NAME);
  const artifactDir = input(PromoteInput.ArtifactDir);
  const signingKey = parseSigningKey(PromoteInput.SigningKey, input(PromoteInput.SigningKey));
  // A key signs only what was verified: a digest proves the bytes, not who made them.
  try {
    assertSignable(signingKey !== undefined, fetch.trustedKeys.length > 0, fetch.noCheckSigs, {
      sign: `"${PromoteInput.SigningKey}"`,
      trust: `"${PromoteInput.TrustedKeys}"`,
      optOut: `"${PromoteInput.NoCheckSigs}: true"`,
    });
  } catch (e) {
    throw new InputError(PromoteInput.SigningKey, (e as Error).message.replace(/^"signing-key" /, ''));
  }
  return {
    ...fetch,
    to,
    signingKey,
    promotedName: parseArtifactName(
      PromoteInput.PromotedName,
      input(PromoteInput.PromotedName),
      promotedArtifactName(sourceName, to),
    ),
    retentionDays: parseInteger(
      PromoteInput.RetentionDays,
      input(PromoteInput.RetentionDays),
      1,
      90,
      undefined,
    ),
    upload: parseBoolean(PromoteInput.Upload, input(PromoteInput.Upload), true),
    artifactDir: artifactDir === '' ? undefined : artifactDir,
  };
}
