// The plan a job compares its plan with (`compare-to`): a bundle on disk, an artifact of this run or
// of another (`compare-run-id`), or `latest`, the newest artifact of the same name from a
// successful run of this workflow on the default branch. Parsed once from the inputs; fetched with
// the same transports and digest checks as any plan; described for the summary in our words, with
// everything that came from elsewhere in code spans.
import { access, constants } from 'node:fs/promises';
import { trustReportOf, type BundleManifest, type TrustReport } from '../core/bundle/index.js';
import { formatPublicKey, parsePublicKey, parseSecretKey, publicKeyOf } from '../core/signing.js';
import { readBundleHead } from '../app/inspect.js';
import { countsText } from '../core/diff/describe.js';
import type { PlanDiff } from '../core/diff/plan-diff.js';
import { NixPlanError, type ErrorCode } from '../core/errors.js';
import type { diffPlanSources } from '../app/diff.js';
import type { CommandRunner } from '../nix/runner.js';
import { digestFile, TransportError, type ArtifactTransport } from '../transport/transport.js';
import { findLatestArtifact, workflowFile, type LatestQuery } from '../transport/github-runs.js';
import { ACTION_OPTION_NAMES, RunnerEnv } from './constants.js';
import { codeSpan, trustedLink } from './markdown.js';
import type { ActionIO } from './run.js';
import {
  InputError,
  parseArtifactName,
  parseRunId,
  parseTrustedKeys,
  type EnvReader,
  type InputReader,
} from './inputs.js';

/** Where the plan to compare with is. */
export type CompareSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'artifact'; readonly name: string; readonly runId: number | undefined }
  | { readonly kind: 'latest'; readonly name: string };

/** The comparison an action was asked for. */
export interface CompareSettings {
  readonly source: CompareSource;
  /** `github-token`, for another run or `latest`. */
  readonly token: string | undefined;
  /** Keys the compared plan's signatures are reported against. */
  readonly trustedKeys: string[];
  /** A shared directory instead of GitHub's artifact service. */
  readonly artifactDir: string | undefined;
  /**
   * The compared plan may hold build outputs no trusted key proves (the plan action's
   * `no-check-sigs`): compared all the same, counted and shown NOT CHECKED.
   */
  readonly noCheckSigs?: boolean | undefined;
}

/** The input names of a comparison (the plan and promote actions spell them alike). */
export interface CompareInputNames {
  readonly compareTo: string;
  readonly compareRunId: string;
  readonly githubToken: string;
  readonly trustedKeys: string;
}

/**
 * Parses `compare-to` and its companions; undefined when there is nothing to compare with.
 * `latest` looks for `sameName` (this job's artifact name); a value with a `/` is a file.
 */
export function parseCompareSettings(
  input: InputReader,
  names: CompareInputNames,
  context: { readonly sameName: string; readonly artifactDir: string | undefined },
): CompareSettings | undefined {
  const value = input(names.compareTo);
  const runId = parseRunId(names.compareRunId, input(names.compareRunId));
  if (value === '') {
    if (runId !== undefined)
      throw new InputError(
        names.compareRunId,
        `needs "${names.compareTo}" (the artifact name to compare with)`,
      );
    return undefined;
  }
  const token = input(names.githubToken) === '' ? undefined : input(names.githubToken);
  let source: CompareSource;
  if (value === 'latest') source = { kind: 'latest', name: context.sameName };
  else if (value.includes('/')) source = { kind: 'file', path: value };
  else source = { kind: 'artifact', name: parseArtifactName(names.compareTo, value, value), runId };
  if (runId !== undefined && source.kind !== 'artifact')
    throw new InputError(
      names.compareRunId,
      `goes with an artifact name in "${names.compareTo}", not "${value}"`,
    );
  if (source.kind === 'latest' && context.artifactDir !== undefined)
    throw new InputError(
      names.compareTo,
      '"latest" searches the runs of GitHub\'s artifact service, not an artifact-dir; accepted there: an artifact name or a file path',
    );
  const needsToken = source.kind === 'latest' || (source.kind === 'artifact' && runId !== undefined);
  if (needsToken && token === undefined && context.artifactDir === undefined)
    throw new InputError(
      names.githubToken,
      `needed with "${names.compareTo}: ${value}"${runId === undefined ? '' : ` and "${names.compareRunId}"`}; accepted: a token with \`actions: read\` (e.g. \${{ github.token }})`,
    );
  return {
    source,
    token,
    trustedKeys: parseTrustedKeys(names.trustedKeys, input(names.trustedKeys)),
    artifactDir: context.artifactDir,
  };
}

/**
 * The comparison with the public key of the job's own `signing-key` trusted as well (when there is
 * one, and it is not listed already): what this job signs is ours, and so is what an earlier run
 * signed with it (the plan action's earlier plans, the promote action's earlier promotions).
 */
export function trustingOwnKey(
  settings: CompareSettings | undefined,
  signingKey: string | undefined,
): CompareSettings | undefined {
  if (settings === undefined || signingKey === undefined) return settings;
  const own = formatPublicKey(publicKeyOf(parseSecretKey(signingKey)));
  return settings.trustedKeys.includes(own)
    ? settings
    : { ...settings, trustedKeys: [...settings.trustedKeys, own] };
}

/** The plan fetched for comparison, and how the summary names it (safe Markdown). */
export interface Baseline {
  readonly path: string;
  readonly description: string;
}

/** There was nothing to compare with (`latest` on a first run): why, in safe Markdown. */
export interface NoBaseline {
  readonly missing: string;
}

/** What fetching a baseline needs. */
export interface CompareDeps {
  readonly env: EnvReader;
  readonly transport: (artifactDir: string | undefined) => ArtifactTransport;
  readonly findLatest?: (query: LatestQuery) => ReturnType<typeof findLatestArtifact>;
}

/** A link to a run when the URL is this server's, else the URL as code. */
function runLink(env: EnvReader, runId: number, url: string): string {
  const server = env(RunnerEnv.ServerUrl) ?? 'https://github.com';
  return url.startsWith(`${server}/`) ? trustedLink(`run ${runId}`, url) : `run ${runId} (${codeSpan(url)})`;
}

/**
 * Refuses, before any work, a `compare-to` file that cannot be read: found only after evaluating
 * and uploading, it failed a step whose plan was already published. (It is read again, and
 * verified, when it is compared.)
 */
export async function checkCompareFile(settings: CompareSettings | undefined, input: string): Promise<void> {
  if (settings?.source.kind !== 'file') return;
  const { path } = settings.source;
  try {
    await access(path, constants.R_OK);
  } catch (e) {
    throw new InputError(
      input,
      `cannot read the bundle to compare with, "${path}" (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); accepted: a readable bundle file, an artifact name (no /), or latest`,
    );
  }
}

/** Fetches the plan to compare with into `destDir`. */
export async function fetchBaseline(
  settings: CompareSettings,
  deps: CompareDeps,
  destDir: string,
): Promise<Baseline | NoBaseline> {
  const { source } = settings;
  if (source.kind === 'file') {
    try {
      await digestFile(source.path);
    } catch (e) {
      throw new NixPlanError(
        'usage',
        `cannot read the bundle to compare with, "${source.path}": ${(e as Error).message}`,
      );
    }
    return { path: source.path, description: `the bundle ${codeSpan(source.path)}` };
  }
  const repository = deps.env(RunnerEnv.Repository) ?? '';
  const inner = deps.transport(settings.artifactDir);
  // A failure names the input that asked for the artifact.
  const transport: Pick<ArtifactTransport, 'download'> = {
    download: (what, dir) =>
      inner.download(what, dir).catch((e: unknown) => {
        throw e instanceof TransportError ? new TransportError(`compare-to: ${e.message}`, { cause: e }) : e;
      }),
  };
  if (source.kind === 'artifact') {
    const got = await transport.download(
      {
        name: source.name,
        planBundle: true,
        ...(source.runId === undefined ? {} : { runId: source.runId, repository }),
        ...(settings.token === undefined ? {} : { token: settings.token }),
      },
      destDir,
    );
    return {
      path: got.path,
      description:
        source.runId === undefined
          ? `the artifact ${codeSpan(source.name)} of this run`
          : `the artifact ${codeSpan(source.name)} of run ${source.runId}`,
    };
  }
  const workflowRef = deps.env(RunnerEnv.WorkflowRef) ?? '';
  const find = deps.findLatest ?? ((q: LatestQuery) => findLatestArtifact(q));
  const currentRun = Number(deps.env(RunnerEnv.RunId));
  const found = await find({
    apiUrl: deps.env(RunnerEnv.ApiUrl) ?? 'https://api.github.com',
    repository,
    token: settings.token ?? '',
    workflowRef,
    name: source.name,
    ...(Number.isSafeInteger(currentRun) && { currentRunId: currentRun }),
  });
  if (found === undefined)
    return {
      missing: `no earlier plan to compare with: no successful run of ${codeSpan(workflowFile(workflowRef))} on the default branch has an artifact ${codeSpan(source.name)} (a first run, or they expired)`,
    };
  const got = await transport.download(
    { name: source.name, planBundle: true, runId: found.runId, repository, token: settings.token ?? '' },
    destDir,
  );
  return {
    path: got.path,
    description: `${codeSpan(source.name)} from the latest successful run on ${codeSpan(found.branch)}: ${runLink(deps.env, found.runId, found.runUrl)}${found.headSha === '' ? '' : ` at ${codeSpan(found.headSha.slice(0, 12))}`}`,
  };
}

/** What a job's summary says about its comparison. */
export interface Comparison {
  /** The diff, when there was a plan to compare with. */
  readonly diff?: PlanDiff;
  /** How the summary names the plan compared with (safe Markdown). */
  readonly baseline?: string;
  /** Why there was none (safe Markdown). */
  readonly missing?: string;
  /** The plan compared with: its manifest, and its signatures against the trusted keys given. */
  readonly compared?: { readonly manifest: BundleManifest; readonly trust: TrustReport };
  /**
   * Why there is no diff although there was a plan to compare with: one of the plans was refused
   * as `nix-plan verify` refuses it. The summary says so instead of showing a diff, and the step
   * fails with this error once the summary is written (`failIfRefused`).
   */
  readonly refused?: NixPlanError;
  /**
   * Build outputs of this job's own plan that no key proves (a plan action with `include:
   * outputs` and no `signing-key`): compared all the same, since this job wrote them, and said
   * so in the summary ("NOT CHECKED"), never silently.
   */
  readonly ownUnproven?: number;
}

/** Errors that mean a plan was refused, as verify refuses it (not that nix-plan failed). */
const REFUSALS: ReadonlySet<ErrorCode> = new Set([
  'bundle',
  'malformed',
  'signature',
  'closure',
  'limit',
  'realm',
  'relocate',
]);

/** Fails the step whose comparison refused a plan; call once its summary says why. */
export function failIfRefused(comparison: Comparison | undefined): void {
  if (comparison?.refused !== undefined) throw comparison.refused;
}

/** The comparison an action's inputs ask for (its token masked), parsed before any work. */
export function compareInputs(
  io: Pick<ActionIO, 'input' | 'setSecret'>,
  names: { CompareTo: string; CompareRunId: string; GithubToken: string; TrustedKeys: string },
  sameName: string,
  artifactDir: string | undefined,
): CompareSettings | undefined {
  const settings = parseCompareSettings(
    io.input,
    {
      compareTo: names.CompareTo,
      compareRunId: names.CompareRunId,
      githubToken: names.GithubToken,
      trustedKeys: names.TrustedKeys,
    },
    { sameName, artifactDir },
  );
  if (settings?.token !== undefined) io.setSecret(settings.token);
  return settings;
}

/**
 * Fetches the plan to compare with and diffs `bundlePath` against it; sets the `changed` output
 * ("true"/"false") and `changes` (counts as JSON) when there was one. With `own`, `bundlePath`
 * is the plan this job just exported: build outputs no key proves are taken from it, counted in
 * `ownUnproven` (the plan compared with still needs a trusted key for its own).
 */
export async function comparePlans(
  settings: CompareSettings,
  bundlePath: string,
  deps: {
    readonly io: ActionIO;
    readonly runner: CommandRunner;
    readonly transport: (artifactDir: string | undefined) => ArtifactTransport;
    readonly diffPlanSources: typeof diffPlanSources;
    readonly findLatest?: CompareDeps['findLatest'];
  },
  outputs: { readonly changed: string; readonly changes: string },
  destDir: string,
  own = false,
): Promise<Comparison> {
  const { io } = deps;
  const baseline = await fetchBaseline(
    settings,
    {
      env: io.env,
      transport: deps.transport,
      ...(deps.findLatest !== undefined && { findLatest: deps.findLatest }),
    },
    destDir,
  );
  if ('missing' in baseline) {
    io.log.info('nothing to compare with: no earlier plan found');
    return { missing: baseline.missing };
  }
  let diff: PlanDiff;
  let manifest: BundleManifest;
  try {
    // Both plans are verified as verify does (output paths, proofs of build outputs, limits); the
    // trusted keys prove build outputs and say who signed, they are not required.
    diff = await deps.diffPlanSources(
      { kind: 'bundle', path: baseline.path },
      { kind: 'bundle', path: bundlePath },
      {
        trustedKeys: settings.trustedKeys,
        ownNew: own,
        noCheckSigs: settings.noCheckSigs === true,
        optionNames: ACTION_OPTION_NAMES,
      },
      { runner: deps.runner, log: io.log, progress: io.progress },
    );
    // The summary shows the compared plan's manifest (origin, signers), read again from the file:
    // it must be the manifest verified, or a file replaced meanwhile would show another plan's.
    ({ manifest } = await readBundleHead(baseline.path));
    if (manifest.checksum !== diff.old.bundle?.checksum)
      throw new NixPlanError(
        'bundle',
        `${baseline.path} changed while it was compared: its manifest is no longer the one verified`,
      );
  } catch (e) {
    if (!(e instanceof NixPlanError) || !REFUSALS.has(e.code)) throw e;
    io.log.warn(`compared with ${baseline.path}: refused, so no diff is shown: ${e.message}`);
    return { baseline: baseline.description, refused: e };
  }
  io.setOutput(outputs.changed, diff.identical ? 'false' : 'true');
  io.setOutput(
    outputs.changes,
    JSON.stringify({ ...diff.total.counts, derivations: diff.total.derivations }),
  );
  io.log.info(
    `compared with ${baseline.path}: ${diff.identical ? 'no changes' : countsText(diff.total.counts)}`,
  );
  const unproven = own ? (diff.new.bundle?.unproven ?? 0) : 0;
  const theirs = diff.old.bundle?.unproven ?? 0;
  if (theirs > 0)
    io.log.warn(
      `no-check-sigs: compared with a plan holding ${theirs} build output${theirs === 1 ? '' : 's'} no trusted key proves`,
    );
  if (unproven > 0)
    io.log.warn(
      `compared with ${unproven} build output${unproven === 1 ? '' : 's'} of this plan that no key proves (no signing-key): the summary says NOT CHECKED`,
    );
  return {
    diff,
    ...(unproven > 0 && { ownUnproven: unproven }),
    baseline: baseline.description,
    compared: {
      manifest,
      trust: trustReportOf(manifest, settings.trustedKeys.map(parsePublicKey), {
        noCheckSigs: settings.noCheckSigs,
        unproven: theirs,
      }),
    },
  };
}
