// Collects what a plan carries for each `--include` kind: the .drv closure, plus realised outputs
// of fixed-output derivations (sources), or the roots' built output closure (outputs).
import { parseDerivation, type Derivation } from '../core/derivation.js';
import { NixPlanError } from '../core/errors.js';
import type { Include } from '../core/bundle/manifest.js';
import { classifySync, dependencyOrder, type ClosureObject, type NixStore, type PathInfo } from './store.js';

export type { Include } from '../core/bundle/manifest.js';

/** .drv files read between two turns of the event loop while Nix's --dump-db output streams in. */
const YIELD_EVERY = 512;

/** The include kinds, for option parsing. */
export const INCLUDE_KINDS: readonly Include[] = ['drvs', 'sources', 'outputs'];

/** The collected closure: objects in dependency order and each root's output paths. */
export interface CollectedClosure {
  readonly objects: ClosureObject[];
  /** root drv path → output name → output path ("" when not known before building). */
  readonly rootOutputs: Map<string, Record<string, string>>;
  /** The `system` of every derivation, sorted. */
  readonly systems: string[];
}

/** Hooks for long phases (the CLI shows them; builds print Nix's own output). */
export interface CollectHooks {
  /** Called before realising paths for `sources`/`outputs`. */
  onRealise?: (what: string, count: number) => void;
}

/** Output name → path of a parsed derivation. */
export function outputsOf(drv: Derivation): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of drv.outputs) out[o.name] = o.path;
  return out;
}

/** True for a fixed-output derivation (its one output names its content hash). */
export function isFixedOutput(drv: Derivation): boolean {
  return drv.outputs.length === 1 && drv.outputs[0]?.hash !== '';
}

/**
 * Reads the closure of `rootDrvs` for `include`: one `nix-store -q --requisites` for the .drv
 * closure, at most one `nix-store --realise` and one more query for added outputs, one
 * `--dump-db` per batch, and the .drv files read directly from the store.
 */
export async function collectClosure(
  store: NixStore,
  storeDir: string,
  rootDrvs: readonly string[],
  include: Include,
  hooks: CollectHooks = {},
): Promise<CollectedClosure> {
  store.setStoreDir(storeDir);
  const drvClosure = await store.requisites(rootDrvs);
  // Nix answers --dump-db (a child process, on the other core) while this thread reads the .drv
  // files; for `drvs` that is every path there is.
  const drvInfos = store.pathInfos(drvClosure);
  drvInfos.catch(() => undefined); // awaited below; an error while reading must not leave it unhandled
  const rootSet = new Set(rootDrvs);
  const rootOutputs = new Map<string, Record<string, string>>();
  const systems = new Set<string>();
  const fodOutputs: string[] = [];
  const fods: string[] = [];
  // One pass over the .drv files: systems for the manifest, roots' outputs, fixed outputs.
  let sinceYield = 0;
  for (const p of drvClosure) {
    if (!p.endsWith('.drv')) continue;
    const file = store.readRegularFileSync(p);
    if (file === undefined) throw new NixPlanError('nix', `'${p}' is not a regular file`);
    const drv = parseDerivation(file.bytes);
    systems.add(Buffer.from(drv.system).toString('latin1'));
    if (rootSet.has(p)) rootOutputs.set(p, outputsOf(drv));
    if (isFixedOutput(drv)) {
      fods.push(p);
      fodOutputs.push(...Object.values(outputsOf(drv)));
    }
    // Let the event loop drain Nix's output now and then, so the child never waits on a full pipe.
    if (++sinceYield === YIELD_EVERY) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  for (const root of rootDrvs)
    if (!rootOutputs.has(root)) throw new NixPlanError('nix', `'${root}' is not in its own closure`);

  let extra: string[] = [];
  if (include === 'sources') {
    if (fods.length > 0) {
      hooks.onRealise?.('fixed-output derivations', fods.length);
      await store.realise(fods);
      extra = await store.requisites(fodOutputs);
    }
  } else if (include === 'outputs') {
    hooks.onRealise?.('roots', rootDrvs.length);
    const built = await store.realise(rootDrvs);
    const outs = new Set(built);
    for (const o of rootOutputs.values()) for (const p of Object.values(o)) if (p !== '') outs.add(p);
    extra = await store.requisites([...outs]);
  }

  const inClosure = new Set(drvClosure);
  const added = extra.filter((p) => !inClosure.has(p));
  const all = [...drvClosure, ...added];
  const infos = await drvInfos;
  if (added.length > 0) for (const [p, info] of await store.pathInfos(added)) infos.set(p, info);
  const refsOf = (p: string): readonly string[] => infos.get(p)?.references ?? [];
  const order = dependencyOrder(all, refsOf);
  const objects: ClosureObject[] = [];
  const readRegularFile = (q: string, maxSize: number): ReturnType<NixStore['readRegularFileSync']> =>
    store.readRegularFileSync(q, maxSize);
  for (const p of order) {
    const info: PathInfo | undefined = infos.get(p);
    if (info === undefined) throw new NixPlanError('internal', `no registration for '${p}'`);
    objects.push({ ...info, kind: classifySync(info, storeDir, readRegularFile) });
  }
  return { objects, rootOutputs, systems: [...systems].sort() };
}
