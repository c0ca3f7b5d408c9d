// realisePlan: import a bundle, then build the chosen roots' outputs by .drv path with the host's
// substituters, optionally keeping GC roots; no evaluation anywhere.
import { readlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { NixPlanError } from '../core/errors.js';
import { optionName, type OptionNames } from '../core/option-names.js';
import type { BundleManifest, BundleRoot, TrustReport } from '../core/bundle/index.js';
import { drvName } from '../core/derivation/index.js';
import { nameOf, outputPathName } from '../core/store-path.js';
import { cleanupRunner } from '../nix/runner.js';
import { NixStore } from '../nix/store.js';
import { importPlan, type ImportDeps, type ImportOptions, type ImportResult } from './import.js';
import { rootLabel } from './inspect.js';
import { rollBack, withRollbackNote } from './rollback.js';
import { realiseWithReport, type BuildReport } from './build-report.js';

/** Options of realisePlan. */
export interface RealiseOptions extends ImportOptions {
  /** Make GC roots PREFIX, PREFIX-doc, PREFIX-2, … (Nix's naming) pointing at the outputs. */
  readonly outLink?: string | undefined;
  /** Roots to build, by index, label (installable/attribute/name) or .drv path; default all. */
  readonly roots?: readonly string[] | undefined;
  /** Extra arguments for `nix-store --realise` (`--max-jobs`, `--keep-going`, `--option …`). */
  readonly nixArgs?: readonly string[] | undefined;
  /**
   * The user chose Nix's log format (the CLI's `--log-format`, passed on by its runner): the build
   * log is theirs, as Nix writes it, so it is not read for the build report.
   */
  readonly logFormat?: string | undefined;
}

/** What realisePlan built. */
export interface RealiseResult {
  readonly manifest: BundleManifest;
  /** drv path → output name → output path. */
  readonly outPaths: Record<string, Record<string, string>>;
  readonly import: Omit<ImportResult, 'manifest'>;
  /** GC roots created (empty without outLink). */
  readonly links: readonly string[];
  /** What was proven about who made the plan (the import's trust report). */
  readonly trust: TrustReport;
  /** What building did: built and substituted paths, and when each root was ready. */
  readonly build: BuildReport;
}

/**
 * The roots `selectors` name: each an index (0-based), a label (installable, attribute or
 * derivation name) or a .drv path. No selectors: every root. Unknown ones are usage errors, naming
 * the option as `names` spells it (default: `--roots`).
 */
export function selectRoots(
  roots: readonly BundleRoot[],
  selectors: readonly string[] = [],
  names?: OptionNames,
): BundleRoot[] {
  if (selectors.length === 0) return [...roots];
  const chosen = new Set<BundleRoot>();
  for (const sel of selectors) {
    const matches = /^\d+$/.test(sel)
      ? roots.filter((_, i) => i === Number(sel))
      : roots.filter(
          (r) => r.drvPath === sel || r.installable === sel || r.attribute === sel || rootLabel(r) === sel,
        );
    if (matches.length === 0)
      throw new NixPlanError(
        'usage',
        `${optionName(names, 'roots')} '${sel}' matches no root of the bundle; its roots are: ${roots.map((r, i) => `${i}=${rootLabel(r)}`).join(', ')}`,
      );
    for (const m of matches) chosen.add(m);
  }
  return roots.filter((r) => chosen.has(r));
}

/**
 * Imports the bundle and builds the selected roots, checking that what Nix built for each root is
 * the output its .drv (verified with the plan) names. If building fails or is interrupted, what
 * this run added (the imported paths and the outputs it built) is removed again.
 */
export async function realisePlan(
  bundlePath: string,
  options: RealiseOptions,
  deps: ImportDeps,
): Promise<RealiseResult> {
  // A selector that names no root is a usage error found in the manifest: refused before any of
  // the plan reaches the store, not after importing it.
  const checkManifest = (m: BundleManifest): void => {
    options.checkManifest?.(m);
    selectRoots(m.roots, options.roots, options.optionNames);
  };
  const imported = await importPlan(bundlePath, { ...options, checkManifest }, deps);
  const { manifest } = imported;
  const roots = selectRoots(manifest.roots, options.roots, options.optionNames);
  const store = new NixStore(deps.runner, { store: options.store });
  const drvs = roots.map((r) => r.drvPath);
  // What building can add: the outputs of the plan's derivations that are not valid yet.
  const declared = imported.declaredOutputs();
  const unbuilt = declared.length === 0 ? new Set<string>() : await store.invalidPaths(declared);
  try {
    return await build(store, imported, roots, drvs, options, deps);
  } catch (e) {
    deps.log.info('the build failed: removing what this run added…');
    const cleanup = new NixStore(cleanupRunner(deps.runner), { store: options.store });
    cleanup.setStoreDir(manifest.storeDir);
    throw withRollbackNote(e, await rollBack(cleanup, [...imported.addedPaths(), ...unbuilt]));
  }
}

async function build(
  store: NixStore,
  imported: ImportResult,
  roots: readonly BundleRoot[],
  drvs: readonly string[],
  options: RealiseOptions,
  deps: ImportDeps,
): Promise<RealiseResult> {
  const { manifest } = imported;
  deps.log.info(`building ${drvs.length} root${drvs.length === 1 ? '' : 's'}…`);
  const { printed, report } = await realiseWithReport(store, roots, {
    addRoot: options.outLink === undefined ? undefined : resolve(options.outLink),
    nixArgs: options.nixArgs,
    userLogFormat: options.logFormat !== undefined,
    nixLog: deps.nixLog,
  });
  // With --add-root Nix prints the links it made; the outputs are their targets.
  const links = options.outLink === undefined ? [] : printed;
  const built = options.outLink === undefined ? printed : await Promise.all(printed.map((l) => readlink(l)));
  const builtSet = new Set(built);
  const builtByName = new Map(built.map((p) => [nameOf(p), p]));
  const outPaths: Record<string, Record<string, string>> = {};
  for (const r of roots) {
    const outs = Object.entries(r.outputs).map(([name, path]): [string, string] => {
      // The root's .drv (verified with the plan) names this output: Nix must have built exactly it.
      if (path !== '' && !builtSet.has(path))
        throw new NixPlanError(
          'nix',
          `Nix built ${[...builtSet].filter((p) => nameOf(p) === nameOf(path)).join(', ') || 'nothing'} for output '${name}' of '${r.drvPath}', not '${path}' that its .drv names`,
        );
      return [name, path !== '' ? path : (builtByName.get(outputPathName(drvName(r.drvPath), name)) ?? '')];
    });
    outPaths[r.drvPath] = Object.fromEntries(outs);
  }
  const all = Object.values(outPaths).flatMap((o) => Object.values(o));
  const missing = all.filter((p) => p === '');
  if (missing.length > 0) throw new NixPlanError('nix', 'Nix did not report every output path of the roots');
  const invalid = await store.invalidPaths(all);
  if (invalid.size > 0) throw new NixPlanError('nix', `after building, '${[...invalid][0]}' is not valid`);
  const { manifest: _m, ...importSummary } = imported;
  return { manifest, outPaths, import: importSummary, links, trust: imported.trust, build: report };
}
