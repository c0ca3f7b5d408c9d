// The root action: evaluate once, write the plan bundle, publish it, and describe it for later jobs.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BundleManifest } from '../core/bundle/manifest.js';
import { exportPlan } from '../app/export.js';
import { diffPlanSources } from '../app/diff.js';
import type { CommandRunner } from '../nix/runner.js';
import { digestFile, type ArtifactTransport } from '../transport/transport.js';
import { ACTION_OPTION_NAMES, PlanInput, PlanOutput, RunnerEnv } from './constants.js';
import { planMatrix } from './matrix.js';
import { defaultRunner, defaultTransport, jobTempDir, nixBuildLog, runnerIO, type ActionIO } from './run.js';
import { parsePlanSettings } from './settings.js';
import { planSummary, stepIdOf, type Published } from './summary.js';
import { publishedAt, setListOutput, siblingAction } from './outputs.js';
import {
  checkCompareFile,
  compareInputs,
  comparePlans,
  failIfRefused,
  trustingOwnKey,
  type CompareDeps,
} from './compare.js';

/** What the root action needs; every member has a default that talks to the real runner. */
export interface PlanDeps {
  readonly io: ActionIO;
  readonly runner: CommandRunner;
  readonly transport: (artifactDir: string | undefined) => ArtifactTransport;
  readonly exportPlan: typeof exportPlan;
  readonly diffPlanSources: typeof diffPlanSources;
  /** Finds `compare-to: latest` (default: GitHub's REST API). */
  readonly findLatest?: CompareDeps['findLatest'];
}

/** The real runner, Nix and artifact service. */
export function defaultPlanDeps(io: ActionIO = runnerIO()): PlanDeps {
  return {
    io,
    runner: defaultRunner(),
    transport: (dir) => defaultTransport(io, dir),
    exportPlan,
    diffPlanSources,
  };
}

/** drv path → outputs, as the out-paths outputs give them. */
export function outPathsOf(manifest: BundleManifest): Record<string, Record<string, string>> {
  return Object.fromEntries(manifest.roots.map((r) => [r.drvPath, r.outputs]));
}

/** Runs the root action. */
export async function run(deps: PlanDeps = defaultPlanDeps()): Promise<void> {
  const { io } = deps;
  const settings = parsePlanSettings(io.input);
  if (settings.signingKey !== undefined) io.setSecret(settings.signingKey);
  // The plan this job signs, and an earlier one it signed, are proven by its own key (their build
  // outputs included) without listing that key in trusted-keys.
  const asked = trustingOwnKey(
    compareInputs(io, PlanInput, settings.artifactName, settings.artifactDir),
    settings.signingKey,
  );
  const compare = asked === undefined || !settings.noCheckSigs ? asked : { ...asked, noCheckSigs: true };
  await checkCompareFile(compare, PlanInput.CompareTo);

  const dir = jobTempDir(io, 'plan');
  await mkdir(dir, { recursive: true });
  const output = join(dir, settings.artifactName);
  await rm(output, { force: true });

  const started = io.now();
  // What the evaluator says (warnings, `trace:`) goes to the job log in a group of its own.
  const evaluationLog = nixBuildLog(io, 'Nix evaluation log');
  const exported = await deps
    .exportPlan(
      {
        ...(settings.installables.length > 0 ? { installables: settings.installables } : {}),
        ...(settings.drvPaths.length > 0 ? { drvPaths: settings.drvPaths } : {}),
        ...(settings.file === undefined ? {} : { file: settings.file, attributes: settings.attributes }),
        output,
        include: settings.include,
        ...(settings.compressionLevel === undefined ? {} : { level: settings.compressionLevel }),
        ...(settings.signingKey === undefined ? {} : { signingKey: settings.signingKey }),
        ...(settings.relocateTo === undefined ? {} : { relocateTo: settings.relocateTo }),
        // The run that made the plan (GITHUB_* variables) and the workspace's git commit.
        provenance: { env: io.env },
        optionNames: ACTION_OPTION_NAMES,
      },
      {
        runner: deps.runner,
        log: evaluationLog.log,
        progress: evaluationLog.progress,
        nixLog: evaluationLog.write,
      },
    )
    .finally(evaluationLog.close);
  const exportedAt = io.now();
  const { manifest, bundlePath } = exported;
  const { digest, size } = await digestFile(bundlePath);
  const matrix = planMatrix(manifest.roots, settings.matrix);

  io.setOutput(PlanOutput.BundlePath, bundlePath);
  io.setOutput(PlanOutput.Digest, digest);
  io.setOutput(PlanOutput.Paths, manifest.paths);
  io.setOutput(PlanOutput.Bytes, size);
  io.setOutput(PlanOutput.Matrix, JSON.stringify(matrix));
  const readManifest = `read the roots from the bundle (nix-plan inspect ${settings.artifactName})`;
  setListOutput(
    io,
    PlanOutput.DrvPaths,
    manifest.roots.map((r) => r.drvPath),
    readManifest,
  );
  setListOutput(io, PlanOutput.OutPaths, outPathsOf(manifest), readManifest);

  let artifactUrl: string | undefined;
  let uploadMs: number | undefined;
  let published: Published = {
    kind: 'none',
    bundlePath,
    stepId: stepIdOf(io.env(RunnerEnv.StepId)),
  };
  if (settings.upload) {
    const before = io.now();
    const artifact = await deps.transport(settings.artifactDir).upload(bundlePath, settings.artifactName, {
      ...(settings.retentionDays === undefined ? {} : { retentionDays: settings.retentionDays }),
    });
    uploadMs = io.now() - before;
    artifactUrl = artifact.url;
    io.setOutput(PlanOutput.ArtifactName, artifact.name);
    if (artifact.id !== undefined) io.setOutput(PlanOutput.ArtifactId, artifact.id);
    if (artifact.url !== undefined) io.setOutput(PlanOutput.ArtifactUrl, artifact.url);
    io.log.info(`published ${artifact.name} (${size} bytes, ${digest})`);
    published = publishedAt(io, settings.artifactDir, artifact.name);
  }

  const comparison =
    compare === undefined
      ? undefined
      : await comparePlans(
          compare,
          bundlePath,
          deps,
          {
            changed: PlanOutput.Changed,
            changes: PlanOutput.Changes,
          },
          jobTempDir(io, 'compare'),
          // The plan is this job's own: its build outputs are compared even when unsigned.
          true,
        );

  // Exporting is everything after evaluation: collecting, writing and (with relocate-to) relocating.
  const { evaluateMs } = exported.timings;
  await io.appendSummary(
    planSummary({
      manifest,
      bundleBytes: size,
      digest,
      artifactName: settings.artifactName,
      artifactUrl,
      timings: { evaluateMs, exportMs: Math.max(0, exportedAt - started - evaluateMs), uploadMs },
      realiseAction: siblingAction(io, 'realise'),
      published,
      jobs: matrix.include.length,
      comparison,
    }),
  );
  failIfRefused(comparison);
}
