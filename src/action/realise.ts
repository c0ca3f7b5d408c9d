// The realise action: fetch a published plan, verify it, import it and build it (or one shard),
// without evaluating anything.
import { withFreshness } from '../app/freshness.js';
import { inspectPlan } from '../app/inspect.js';
import { trustReportOf, type BundleManifest } from '../core/bundle/index.js';
import { parsePublicKey } from '../core/signing.js';
import { storeDirAsker } from '../app/import.js';
import { realisePlan } from '../app/realise.js';
import type { CommandRunner } from '../nix/runner.js';
import type { ArtifactTransport } from '../transport/transport.js';
import { ACTION_OPTION_NAMES, RealiseInput, RealiseOutput } from './constants.js';
import { fetchPlan } from './fetch.js';
import { unpinnedWarning } from './fetch-settings.js';
import { selectShard } from './matrix.js';
import { defaultRunner, defaultTransport, jobTempDir, nixBuildLog, runnerIO, type ActionIO } from './run.js';
import { InputError } from './inputs.js';
import { parseRealiseSettings } from './settings.js';
import { realiseSummary } from './summary.js';

/** What the realise action needs; every member has a default that talks to the real runner. */
export interface RealiseDeps {
  readonly io: ActionIO;
  readonly runner: CommandRunner;
  readonly transport: (artifactDir: string | undefined) => ArtifactTransport;
  readonly inspectPlan: typeof inspectPlan;
  readonly realisePlan: typeof realisePlan;
}

/** The real runner, Nix and artifact service. */
export function defaultRealiseDeps(io: ActionIO = runnerIO()): RealiseDeps {
  return {
    io,
    runner: defaultRunner(),
    transport: (dir) => defaultTransport(io, dir),
    inspectPlan,
    realisePlan,
  };
}

/** Runs the realise action. */
export async function run(deps: RealiseDeps = defaultRealiseDeps()): Promise<void> {
  const { io } = deps;
  const settings = parseRealiseSettings(io.input, io.env);
  if (settings.source.kind === 'artifact' && settings.source.token !== undefined)
    io.setSecret(settings.source.token);

  const unpinned = unpinnedWarning(settings);
  if (unpinned !== undefined) io.log.warn(unpinned);
  const started = io.now();
  const artifactDir = settings.source.kind === 'artifact' ? settings.source.artifactDir : undefined;
  const plan = await fetchPlan(settings, () => deps.transport(artifactDir), jobTempDir(io, 'fetched'));
  io.setOutput(RealiseOutput.BundlePath, plan.path);
  const fetched = io.now();

  let roots = settings.roots;
  // What the import refuses from the manifest, as it refuses `roots` naming no root: before any of
  // the plan reaches the store, and after the plan's realm (no shard makes a plan for another
  // store dir importable here; the realm's refusal says what would).
  let checkManifest: ((manifest: BundleManifest) => void) | undefined;
  if (settings.shard !== undefined) {
    const { shard } = settings;
    const { manifest } = await deps.inspectPlan(plan.path);
    roots = selectShard(manifest.roots, shard).map((r) => r.drvPath);
    // No roots would mean every root to realisePlan: a shard that selects none is refused instead
    // (the plan's matrix output never has more jobs than roots).
    if (roots.length === 0)
      checkManifest = (m) => {
        throw new InputError(
          RealiseInput.Shard,
          `"${shard.index}/${shard.count}" selects no root: the plan has ${m.roots.length}, ` +
            `so its matrix output has at most ${m.roots.length} jobs; accepted: INDEX/COUNT with COUNT ≤ ${m.roots.length}`,
        );
      };
    else
      io.log.info(`shard ${shard.index}/${shard.count}: ${roots.length} of ${manifest.roots.length} root(s)`);
  }
  if (settings.noCheckSigs && settings.trustedKeys.length === 0)
    io.log.warn(`${RealiseInput.NoCheckSigs}: realising a plan no trusted key vouches for`);
  const buildLog = nixBuildLog(io);
  // With out-link, its last-applied record refuses an older plan; max-age refuses an old one.
  const result = await withFreshness(
    plan.path,
    {
      maxAgeMs: settings.maxAgeMs,
      maxAgeText: settings.maxAgeText,
      target: settings.outLink,
      allowDowngrade: settings.allowDowngrade,
      optionNames: ACTION_OPTION_NAMES,
      storeDir: storeDirAsker(deps, undefined),
    },
    buildLog.log,
    (bundle, name) =>
      deps.realisePlan(
        bundle,
        {
          name,
          optionNames: ACTION_OPTION_NAMES,
          ...(roots.length > 0 ? { roots } : {}),
          ...(settings.trustedKeys.length > 0 ? { trustedKeys: settings.trustedKeys } : {}),
          ...(settings.noCheckSigs ? { noCheckSigs: true } : {}),
          // Checked again on the private copy that is imported: the file could change after fetching.
          ...(settings.digest === undefined ? {} : { digest: settings.digest }),
          ...(settings.outLink === undefined ? {} : { outLink: settings.outLink }),
          ...(settings.nixArgs.length > 0 ? { nixArgs: settings.nixArgs } : {}),
          ...(checkManifest === undefined ? {} : { checkManifest }),
        },
        { runner: deps.runner, log: buildLog.log, progress: buildLog.progress, nixLog: buildLog.write },
      ),
  ).finally(buildLog.close);
  io.setOutput(RealiseOutput.OutPaths, JSON.stringify(result.outPaths));
  await io.appendSummary(
    realiseSummary({
      manifest: result.manifest,
      label: plan.label,
      run: plan.run,
      digest: settings.digest,
      shard: settings.shard === undefined ? undefined : `${settings.shard.index}/${settings.shard.count}`,
      outPaths: result.outPaths,
      timings: { fetchMs: fetched - started, realiseMs: io.now() - fetched },
      build: result.build,
      unpinned: settings.unpinned,
      // The import's own report; a realisePlan that gives none (a stand-in) gets one made here.
      trust:
        (result as Partial<typeof result>).trust ??
        trustReportOf(result.manifest, settings.trustedKeys.map(parsePublicKey), {
          noCheckSigs: settings.noCheckSigs,
        }),
    }),
  );
}
