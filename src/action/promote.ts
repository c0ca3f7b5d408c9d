// The promote action: fetch a plan, verify it, relocate it into another realm, re-sign it and
// publish it; meant for a job behind `environment:` so required reviewers gate each promotion.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { withFreshness } from '../app/freshness.js';
import { relocatePlan } from '../app/relocate.js';
import { inspectPlan } from '../app/inspect.js';
import { diffPlanSources } from '../app/diff.js';
import { trustReportOf } from '../core/bundle/index.js';
import { NixPlanError } from '../core/errors.js';
import { parsePublicKey } from '../core/signing.js';
import type { CommandRunner } from '../nix/runner.js';
import { digestFile, type ArtifactTransport } from '../transport/transport.js';
import { ACTION_OPTION_NAMES, PromoteInput, PromoteOutput, RunnerEnv } from './constants.js';
import {
  checkCompareFile,
  compareInputs,
  comparePlans,
  failIfRefused,
  trustingOwnKey,
  type CompareDeps,
} from './compare.js';
import { codeSpan } from './markdown.js';
import { fetchPlan } from './fetch.js';
import { unpinnedWarning } from './fetch-settings.js';
import { publishedAt, setListOutput, siblingAction } from './outputs.js';
import { defaultRunner, defaultTransport, jobTempDir, runnerIO, type ActionIO } from './run.js';
import { parsePromoteSettings } from './settings.js';
import { promoteSummary, stepIdOf, type Published } from './summary.js';

/** What the promote action needs; every member has a default that talks to the real runner. */
export interface PromoteDeps {
  readonly io: ActionIO;
  readonly runner: CommandRunner;
  readonly transport: (artifactDir: string | undefined) => ArtifactTransport;
  readonly inspectPlan: typeof inspectPlan;
  readonly relocatePlan: typeof relocatePlan;
  readonly diffPlanSources: typeof diffPlanSources;
  /** Finds `compare-to: latest` (default: GitHub's REST API). */
  readonly findLatest?: CompareDeps['findLatest'];
}

/** The real runner, Nix and artifact service. */
export function defaultPromoteDeps(io: ActionIO = runnerIO()): PromoteDeps {
  return {
    io,
    runner: defaultRunner(),
    transport: (dir) => defaultTransport(io, dir),
    inspectPlan,
    relocatePlan,
    diffPlanSources,
  };
}

/** Where the promoted plan was fetched from, in safe Markdown. */
function sourceText(settings: ReturnType<typeof parsePromoteSettings>, runId: string | undefined): string {
  const { source } = settings;
  if (source.kind === 'file') return `the bundle ${codeSpan(source.path)}`;
  const run = source.runId ?? (runId === undefined ? undefined : Number(runId));
  const which = run === undefined || Number.isNaN(run) ? 'this run' : `run ${run}`;
  return `the artifact ${codeSpan(source.name)} of ${which}${source.runId === undefined && which !== 'this run' ? ' (this run)' : ''}`;
}

/** Runs the promote action. */
export async function run(deps: PromoteDeps = defaultPromoteDeps()): Promise<void> {
  const { io } = deps;
  const settings = parsePromoteSettings(io.input, io.env);
  if (settings.signingKey !== undefined) io.setSecret(settings.signingKey);
  if (settings.source.kind === 'artifact' && settings.source.token !== undefined)
    io.setSecret(settings.source.token);
  const inputs = compareInputs(io, PromoteInput, settings.promotedName, settings.artifactDir);
  // The previous promotion into this realm was signed by this realm's key: the summary says so.
  const compare = trustingOwnKey(inputs, settings.signingKey);
  await checkCompareFile(compare, PromoteInput.CompareTo);

  const transport = (): ArtifactTransport => deps.transport(settings.artifactDir);
  if (settings.noCheckSigs && settings.trustedKeys.length === 0)
    io.log.warn(
      `${PromoteInput.NoCheckSigs}: promoting a plan no trusted key vouches for (the promoted plan records it)`,
    );
  const unpinned = unpinnedWarning(settings);
  if (unpinned !== undefined) io.log.warn(unpinned);
  const plan = await fetchPlan(settings, transport, jobTempDir(io, 'fetched'));
  const input = (await deps.inspectPlan(plan.path)).manifest;
  const from = input.storeDir;

  const dir = jobTempDir(io, 'promoted');
  await mkdir(dir, { recursive: true });
  const output = join(dir, settings.promotedName);
  await rm(output, { force: true });
  const { manifest, report } = await withFreshness(
    plan.path,
    { maxAgeMs: settings.maxAgeMs, maxAgeText: settings.maxAgeText, optionNames: ACTION_OPTION_NAMES },
    io.log,
    (bundle, name) =>
      deps.relocatePlan(
        bundle,
        // relocatePlan verifies the whole bundle first (and its signature, when keys are given),
        // and records in the promoted manifest what it was promoted from and who signed that.
        {
          name,
          to: settings.to,
          output,
          optionNames: ACTION_OPTION_NAMES,
          ...(settings.trustedKeys.length > 0 ? { trustedKeys: settings.trustedKeys } : {}),
          ...(settings.noCheckSigs ? { noCheckSigs: true } : {}),
          // Checked again on the private copy that is relocated: the file could change after fetching.
          ...(settings.digest === undefined ? {} : { digest: settings.digest }),
          ...(settings.signingKey === undefined ? {} : { signingKeys: [settings.signingKey] }),
        },
        { runner: deps.runner, log: io.log, progress: io.progress },
      ),
  );
  // The summary describes the input from its own read of the file: it must be the plan that was
  // verified and relocated (whose checksum the new promotion records), or it would show another
  // plan's origin and signatures beside this one.
  const promotedFrom = manifest.promotions?.[manifest.promotions.length - 1];
  if (promotedFrom?.checksum !== input.checksum)
    throw new NixPlanError(
      'bundle',
      `'${plan.path}' changed while it was promoted (read with manifest ${input.checksum}, relocated from ${promotedFrom?.checksum ?? 'no recorded input'}): nothing was published`,
    );
  const { digest, size } = await digestFile(output);
  io.setOutput(PromoteOutput.BundlePath, output);
  io.setOutput(PromoteOutput.Digest, digest);
  io.setOutput(PromoteOutput.Paths, manifest.paths);
  io.setOutput(PromoteOutput.Bytes, size);
  setListOutput(
    io,
    PromoteOutput.DrvPaths,
    manifest.roots.map((r) => r.drvPath),
    'read the roots from the bundle',
  );

  let artifactUrl: string | undefined;
  let published: Published = { kind: 'none', bundlePath: output, stepId: stepIdOf(io.env(RunnerEnv.StepId)) };
  if (settings.upload) {
    const artifact = await transport().upload(output, settings.promotedName, {
      ...(settings.retentionDays === undefined ? {} : { retentionDays: settings.retentionDays }),
    });
    artifactUrl = artifact.url;
    io.setOutput(PromoteOutput.ArtifactName, artifact.name);
    if (artifact.id !== undefined) io.setOutput(PromoteOutput.ArtifactId, artifact.id);
    if (artifact.url !== undefined) io.setOutput(PromoteOutput.ArtifactUrl, artifact.url);
    io.log.info(`published ${artifact.name}: ${from} → ${settings.to} (${size} bytes, ${digest})`);
    published = publishedAt(io, settings.artifactDir, artifact.name);
  }
  const comparison =
    compare === undefined
      ? undefined
      : await comparePlans(
          compare,
          output,
          deps,
          {
            changed: PromoteOutput.Changed,
            changes: PromoteOutput.Changes,
          },
          jobTempDir(io, 'compare'),
        );
  await io.appendSummary(
    promoteSummary({
      from,
      manifest,
      report,
      bundleBytes: size,
      digest,
      artifactName: settings.promotedName,
      artifactUrl,
      realiseAction: siblingAction(io, 'realise'),
      published,
      source: {
        description: sourceText(settings, io.env(RunnerEnv.RunId)),
        manifest: input,
        // relocatePlan required one of these keys to verify, when keys were given.
        trust: trustReportOf(input, settings.trustedKeys.map(parsePublicKey), {
          noCheckSigs: settings.noCheckSigs,
        }),
      },
      comparison,
      unpinned: settings.unpinned,
    }),
  );
  failIfRefused(comparison);
}
