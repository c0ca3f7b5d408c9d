// The promote action: fetch a plan, verify it, relocate it into another realm, re-sign it and
// publish it; meant for a job behind `environment:` so required reviewers gate each promotion.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { withFreshness } from '../app/freshness.js';
import { relocatePlan } from '../app/relocate.js';
import { inspectPlan } from '../app/inspect.js';
import type { CommandRunner } from '../nix/runner.js';
import { digestFile, type ArtifactTransport } from '../transport/transport.js';
import { PromoteInput, PromoteOutput } from './constants.js';
import { fetchPlan } from './fetch.js';
import { setListOutput, siblingAction } from './plan.js';
import { defaultRunner, defaultTransport, jobTempDir, runnerIO, type ActionIO } from './run.js';
import { parsePromoteSettings } from './settings.js';
import { promoteSummary } from './summary.js';

/** What the promote action needs; every member has a default that talks to the real runner. */
export interface PromoteDeps {
  readonly io: ActionIO;
  readonly runner: CommandRunner;
  readonly transport: (artifactDir: string | undefined) => ArtifactTransport;
  readonly inspectPlan: typeof inspectPlan;
  readonly relocatePlan: typeof relocatePlan;
}

/** The real runner, Nix and artifact service. */
export function defaultPromoteDeps(io: ActionIO = runnerIO()): PromoteDeps {
  return {
    io,
    runner: defaultRunner(),
    transport: (dir) => defaultTransport(io, dir),
    inspectPlan,
    relocatePlan,
  };
}

/** Runs the promote action. */
export async function run(deps: PromoteDeps = defaultPromoteDeps()): Promise<void> {
  const { io } = deps;
  const settings = parsePromoteSettings(io.input, io.env);
  if (settings.signingKey !== undefined) io.setSecret(settings.signingKey);
  if (settings.source.kind === 'artifact' && settings.source.token !== undefined)
    io.setSecret(settings.source.token);

  const transport = (): ArtifactTransport => deps.transport(settings.artifactDir);
  if (settings.noCheckSigs && settings.trustedKeys.length === 0)
    io.log.warn(
      `${PromoteInput.NoCheckSigs}: promoting a plan no trusted key vouches for (the promoted plan records it)`,
    );
  const plan = await fetchPlan(settings, transport, jobTempDir(io, 'fetched'));
  const from = (await deps.inspectPlan(plan.path)).manifest.storeDir;

  const dir = jobTempDir(io, 'promoted');
  await mkdir(dir, { recursive: true });
  const output = join(dir, settings.promotedName);
  await rm(output, { force: true });
  const { manifest, report } = await withFreshness(
    plan.path,
    { maxAgeMs: settings.maxAgeMs, maxAgeText: settings.maxAgeText },
    io.log,
    (bundle) =>
      deps.relocatePlan(
        bundle,
        // relocatePlan verifies the whole bundle first (and its signature, when keys are given),
        // and records in the promoted manifest what it was promoted from and who signed that.
        {
          to: settings.to,
          output,
          ...(settings.trustedKeys.length > 0 ? { trustedKeys: settings.trustedKeys } : {}),
          ...(settings.noCheckSigs ? { noCheckSigs: true } : {}),
          // Checked again on the private copy that is relocated: the file could change after fetching.
          ...(settings.digest === undefined ? {} : { digest: settings.digest }),
          ...(settings.signingKey === undefined ? {} : { signingKeys: [settings.signingKey] }),
        },
        { runner: deps.runner, log: io.log, progress: io.progress },
      ),
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
  if (settings.upload) {
    const artifact = await transport().upload(output, settings.promotedName, {
      ...(settings.retentionDays === undefined ? {} : { retentionDays: settings.retentionDays }),
    });
    artifactUrl = artifact.url;
    io.setOutput(PromoteOutput.ArtifactName, artifact.name);
    if (artifact.id !== undefined) io.setOutput(PromoteOutput.ArtifactId, artifact.id);
    if (artifact.url !== undefined) io.setOutput(PromoteOutput.ArtifactUrl, artifact.url);
    io.log.info(`published ${artifact.name}: ${from} → ${settings.to} (${size} bytes, ${digest})`);
  }
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
    }),
  );
}
