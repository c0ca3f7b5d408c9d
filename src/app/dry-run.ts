// realise --dry-run: what realising a bundle would import, build and fetch, answered without
// changing the store. A dry run cannot import, and without the .drv files in the store Nix
// cannot plan a build itself (`nix-store --realise --dry-run` needs them). What can be answered
// without them is answered here:
// - the bundle is verified completely, as import would (nothing reaches the store);
// - the store is asked which of the bundle's paths it has (the rest import would add);
// - the .drv files in the bundle give every output path the selected roots need; the store is
//   asked which of those it has, and Nix (`nix-store --realise --dry-run` on the missing output
//   paths, which needs no .drv) which its substituters have;
// - Nix's own rule (queryMissing) then decides: a derivation whose needed outputs are all there or
//   fetchable is not built, and only a derivation that is built needs its inputs.
// An output whose path is known only after building (floating content-addressed) counts as built.
import { NixPlanError } from '../core/errors.js';
import type { BundleManifest } from '../core/bundle/manifest.js';
import { parseDerivation } from '../core/derivation/index.js';
import { queryMissing } from '../nix/missing.js';
import { NixStore } from '../nix/store.js';
import type { Deps } from './deps.js';
import type { RealiseOptions } from './realise.js';
import { selectRoots } from './realise.js';
import { readBundleHead } from './inspect.js';
import { verifyWithProgress } from './verify.js';

/** What realising would do. */
export interface DryRunResult {
  readonly dryRun: true;
  readonly manifest: BundleManifest;
  /** The bundle's paths the store lacks (import would add them) and those it has. */
  readonly import: { readonly missing: number; readonly alreadyValid: number };
  /** Derivations that would be built, in the bundle's order (dependencies first). */
  readonly build: string[];
  /** Paths that would be fetched from substituters: the needed outputs and their references. */
  readonly fetch: string[];
  /** Nix's estimate of the fetch (`0.12 MiB download, 0.40 MiB unpacked`), when it gave one. */
  readonly fetchSize?: string;
  /** Needed outputs the store has already. */
  readonly present: number;
  /** Derivations built only because their outputs' paths are known after building. */
  readonly unknownOutputs: string[];
}

/** One derivation as far as planning needs it. */
interface DrvFacts {
  /** Output name → path ("" when known only after building). */
  readonly outputs: ReadonlyMap<string, string>;
  readonly inputDrvs: readonly { path: string; outputs: readonly string[] }[];
}

function factsOf(bytes: Uint8Array): DrvFacts {
  const drv = parseDerivation(bytes);
  return {
    outputs: new Map(drv.outputs.map((o) => [o.name, o.path])),
    inputDrvs: drv.inputDrvs.map((i) => ({ path: i.path, outputs: [...i.outputs] })),
  };
}

/** What `realisePlan` would import, build and fetch; changes nothing. */
export async function dryRunRealise(
  bundlePath: string,
  options: RealiseOptions,
  deps: Deps,
): Promise<DryRunResult> {
  const store = new NixStore(deps.runner, { store: options.store });
  const storeDir = await store.storeDir();
  // As plain realise does: roots that name none of the plan's are refused from its manifest,
  // before the plan is read whole, unless the plan is for another realm (no choice of roots
  // makes it importable here; the verifier's realm refusal says what would).
  const { manifest: claimed } = await readBundleHead(bundlePath);
  if (claimed.storeDir === storeDir) selectRoots(claimed.roots, options.roots, options.optionNames);
  const paths: string[] = [];
  const drvs = new Map<string, DrvFacts>();
  const report = await verifyWithProgress(
    bundlePath,
    {
      trustedKeys: options.trustedKeys,
      storeDir,
      isValidInStore: async (p) => (await store.invalidPaths([p])).size === 0,
      onEntry: (e) => {
        paths.push(e.path);
        if (e.kind === 'drv' && e.nar.file !== undefined) drvs.set(e.path, factsOf(e.nar.file.contents));
      },
    },
    deps.progress,
  );
  const { manifest } = report;
  const missing = await store.invalidPaths(paths);
  const roots = selectRoots(manifest.roots, options.roots, options.optionNames);

  // Every derivation the roots can need, and every output path they know.
  const facts = async (drv: string): Promise<DrvFacts> => {
    const known = drvs.get(drv);
    if (known !== undefined) return known;
    // An input already valid in the store instead of in the bundle.
    const read = factsOf(await store.readFile(drv));
    drvs.set(drv, read);
    return read;
  };
  const reachable: string[] = [];
  const seen = new Set<string>();
  const queue = roots.map((r) => r.drvPath);
  while (queue.length > 0) {
    const drv = queue.pop() ?? '';
    if (seen.has(drv)) continue;
    seen.add(drv);
    reachable.push(drv);
    for (const input of (await facts(drv)).inputDrvs) queue.push(input.path);
  }
  const outputPaths = [
    ...new Set(reachable.flatMap((d) => [...(drvs.get(d)?.outputs.values() ?? [])])),
  ].filter((p) => p !== '');
  const invalidOutputs = await store.invalidPaths(outputPaths);
  const substitutable = new Set(
    invalidOutputs.size === 0 ? [] : (await queryMissing(store, [...invalidOutputs])).fetch,
  );

  // Nix's rule: built only when some needed output is neither there nor fetchable.
  const wanted = new Map<string, Set<string>>();
  const build = new Set<string>();
  const fetchNeeded = new Set<string>();
  const unknownOutputs = new Set<string>();
  let present = 0;
  const visit = (drv: string, outputs: readonly string[] | undefined): void => {
    const f = drvs.get(drv);
    if (f === undefined) throw new NixPlanError('internal', `no derivation read for '${drv}'`);
    const names = outputs ?? [...f.outputs.keys()];
    const already = wanted.get(drv) ?? new Set<string>();
    const fresh = names.filter((n) => !already.has(n));
    if (fresh.length === 0) return;
    for (const n of fresh) already.add(n);
    wanted.set(drv, already);
    if (build.has(drv)) return;
    const needed = [...already].map((n) => f.outputs.get(n) ?? '');
    const mustBuild = needed.some((p) => p === '' || (invalidOutputs.has(p) && !substitutable.has(p)));
    if (!mustBuild) {
      for (const p of fresh.map((n) => f.outputs.get(n) ?? ''))
        if (invalidOutputs.has(p)) fetchNeeded.add(p);
        else present++;
      return;
    }
    if (needed.includes('')) unknownOutputs.add(drv);
    build.add(drv);
    for (const p of needed) fetchNeeded.delete(p);
    for (const input of f.inputDrvs) visit(input.path, input.outputs);
  };
  for (const r of roots) visit(r.drvPath, undefined);

  // What fetching the needed outputs brings along (their references), as Nix lists it.
  const fetched =
    fetchNeeded.size === 0 ? { fetch: [] as string[] } : await queryMissing(store, [...fetchNeeded]);
  const order = new Map(paths.map((p, i) => [p, i]));
  return {
    dryRun: true,
    manifest,
    import: { missing: missing.size, alreadyValid: paths.length - missing.size },
    build: [...build].sort((a, b) => (order.get(a) ?? -1) - (order.get(b) ?? -1)),
    fetch: fetched.fetch,
    ...('fetchSize' in fetched && fetched.fetchSize !== undefined ? { fetchSize: fetched.fetchSize } : {}),
    present,
    unknownOutputs: [...unknownOutputs],
  };
}
