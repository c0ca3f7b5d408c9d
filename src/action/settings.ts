// Typed settings of the three actions, parsed once from their inputs; a bad input throws naming
// the input and what it accepts, before anything runs.
import { assertSignable } from '../app/signing-policy.js';
import { INCLUDE_KINDS, MAX_LEVEL, MIN_LEVEL, type Include } from '../core/bundle/index.js';
import { DEFAULT_ARTIFACT_NAME, PlanInput, PromoteInput, RealiseInput } from './constants.js';
import { parseFetch, type FetchSettings } from './fetch-settings.js';
import {
  InputError,
  parseArtifactName,
  parseBoolean,
  parseChoice,
  parseInteger,
  parseLines,
  parseMatrixShape,
  parseNixArgs,
  parseSigningKey,
  parseStoreDir,
  type EnvReader,
  type InputReader,
} from './inputs.js';
import { type MatrixShape, type Shard, parseShard } from './matrix.js';

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
  /** Compare with a plan whose build outputs no trusted key proves (counted, shown NOT CHECKED). */
  readonly noCheckSigs: boolean;
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
  // The plan action verifies another plan only to compare with it.
  const noCheckSigs = parseBoolean(PlanInput.NoCheckSigs, input(PlanInput.NoCheckSigs), false);
  if (noCheckSigs && input(PlanInput.CompareTo) === '')
    throw new InputError(
      PlanInput.NoCheckSigs,
      `goes with "${PlanInput.CompareTo}" (it lets the plan compared with hold build outputs no trusted key proves)`,
    );
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
    noCheckSigs,
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
