// diffPlanSources: what changes between two plans (bundles, .drv paths or a profile's current
// generation), before anything is built. The sides are read one after the other, each keeping
// only its derivations' heads (the new side takes those of .drv files both hold from the old
// one); a side in another realm is relocated into the other's first, so a promoted
// plan compares with its original as "same plan, other realm". `--drv NAME` then reads the bytes
// of the changed derivations again to say why NAME differs.
import { NixPlanError } from '../core/errors.js';
import { parseDerivation, parseDerivationSpans, type Derivation } from '../core/derivation/index.js';
import { diffDerivations, type DrvDiff, type DrvLookup } from '../core/diff/derivation-diff.js';
import { PlanGraph, type DrvNode } from '../core/diff/graph.js';
import { diffPlans, type PlanDiff } from '../core/diff/plan-diff.js';
import { relocateAdvice, type OptionNames } from '../core/option-names.js';
import { relocateClosure } from '../core/relocate/index.js';
import type { Deps } from './deps.js';
import { readPlanSide, storeDirOf } from './plan-reader.js';
import { pinLocation, type PlanLocation, type ReadSide } from './plan-side.js';

/** Options of a comparison. */
export interface DiffOptions {
  /** Nix store URI for .drv and profile sides. */
  readonly store?: string | undefined;
  /**
   * Public keys the bundles' signatures are checked against: reported, not required; a verified
   * one proves a bundle's build outputs, as in verify.
   */
  readonly trustedKeys?: readonly string[] | undefined;
  /** Accept build outputs no trusted signature proves (`--no-check-sigs`), counted in the facts. */
  readonly noCheckSigs?: boolean | undefined;
  /**
   * The new plan is the caller's own, just written (the plan action compares the plan it
   * exported): its build outputs are accepted unproven and counted (`new.bundle.unproven`), as
   * `noCheckSigs` would for that side alone. The old plan still needs a trusted key for its own.
   */
  readonly ownNew?: boolean | undefined;
  /** Explain why the derivations of this name (package name, derivation name or .drv path) differ. */
  readonly drv?: string | undefined;
  /** Derivation pairs a drill-down compares at most (default 100). */
  readonly maxCompared?: number | undefined;
  /** How refusals name what the user can change (default: the command line's flags). */
  readonly optionNames?: OptionNames | undefined;
  /**
   * Most bytes of .drv and file contents a side holds in memory, to be relocated or for a
   * drill-down (default MAX_HELD_BYTES); beyond, the comparison is refused (exit 8).
   */
  readonly maxHeldBytes?: number | undefined;
}

/** Where the bytes of one side come from during a drill-down. */
class SideFiles implements DrvLookup {
  private readonly parsed = new Map<string, Derivation>();
  constructor(private readonly bytes: ReadonlyMap<string, Uint8Array>) {}
  derivation(path: string): Derivation | undefined {
    let drv = this.parsed.get(path);
    if (drv === undefined) {
      const b = this.bytes.get(path);
      if (b === undefined || !path.endsWith('.drv')) return undefined;
      this.parsed.set(path, (drv = parseDerivation(b)));
    }
    return drv;
  }
  file(path: string): Uint8Array | undefined {
    return path.endsWith('.drv') ? undefined : this.bytes.get(path);
  }
}

/**
 * The old side moved into the new side's realm: its objects relocated (as `nix-plan relocate`
 * would), its graph rebuilt from the relocated .drv files, and their bytes kept for a drill-down.
 */
function relocateSide(
  old: ReadSide,
  to: string,
  names: OptionNames | undefined,
): { graph: PlanGraph; bytes: Map<string, Uint8Array> } {
  const objects = old.objects ?? [];
  const relocation = relocateClosure(objects, old.side.storeDir, to, { optionNames: names });
  const roots = old.graph.roots.map((r) => {
    const drvPath = relocation.pathMap.get(r.drvPath);
    if (drvPath === undefined) throw new NixPlanError('internal', `root ${r.drvPath} was not relocated`);
    return { label: r.label, drvPath };
  });
  const graph = new PlanGraph(to, roots);
  const bytes = new Map<string, Uint8Array>();
  for (const o of relocation.objects) {
    if (o.contents === undefined) continue;
    bytes.set(o.path, o.contents);
    if (o.kind === 'drv') graph.add(o.path, parseDerivationSpans(o.contents).head);
  }
  return { graph, bytes };
}

/** The derivations of a graph that `name` designates: by path, derivation name or package name. */
function matching(nodes: readonly DrvNode[], name: string): DrvNode[] {
  const byPath = nodes.filter((n) => n.path === name);
  if (byPath.length > 0) return byPath;
  const byName = nodes.filter((n) => n.name === name);
  return byName.length > 0 ? byName : nodes.filter((n) => n.pname === name);
}

/** The pairs of changed derivations `name` designates, or a usage error saying why there are none. */
function drillPairs(old: PlanGraph, now: PlanGraph, name: string): [string, string][] {
  const oldChanged = old.nodes().filter((n) => !now.has(n.path));
  const newChanged = now.nodes().filter((n) => !old.has(n.path));
  let a = matching(oldChanged, name);
  let b = matching(newChanged, name);
  if (a.length === 0 && b.length === 0) {
    const same = matching(old.nodes(), name).filter((n) => now.has(n.path));
    throw new NixPlanError(
      'usage',
      same.length > 0
        ? `--drv '${name}': ${same.map((n) => n.path).join(', ')} ${same.length === 1 ? 'is' : 'are'} the same in both plans`
        : `--drv '${name}' names no derivation of either plan (give a package name, a derivation name or a .drv path)`,
    );
  }
  if (a.length === 0 || b.length === 0)
    throw new NixPlanError(
      'usage',
      `--drv '${name}' is only in the ${a.length === 0 ? 'new' : 'old'} plan (${[...a, ...b].map((n) => n.path).join(', ')}): there is nothing to compare it with`,
    );
  if (a.length === 1 && b.length === 1) return [[a[0]!.path, b[0]!.path]];
  // Several: pair those of equal derivation names, one on each side.
  const pairs: [string, string][] = [];
  for (const x of a) {
    const same = b.filter((y) => y.name === x.name);
    if (same.length === 1 && a.filter((z) => z.name === x.name).length === 1)
      pairs.push([x.path, same[0]!.path]);
  }
  if (pairs.length > 0) return pairs;
  a = a.slice(0, 10);
  b = b.slice(0, 10);
  throw new NixPlanError(
    'usage',
    `--drv '${name}' is ambiguous: it names ${a.map((n) => n.name).join(', ')} in the old plan and ${b
      .map((n) => n.name)
      .join(', ')} in the new one; give a derivation name or a .drv path`,
  );
}

/** Paths of `graph` that `other` does not hold, and the files their .drv files name as sources. */
function changedPaths(graph: PlanGraph, other: PlanGraph): Set<string> {
  return new Set(
    graph
      .nodes()
      .filter((n) => !other.has(n.path))
      .map((n) => n.path),
  );
}

/**
 * Reads the old and new sides and compares them; see the module comment. A bundle is read from a
 * private copy, so the digest, manifest and derivations shown are those of the bytes verified.
 */
export async function diffPlanSources(
  oldLocation: PlanLocation,
  newLocation: PlanLocation,
  options: DiffOptions,
  deps: Deps,
): Promise<PlanDiff> {
  const old = await pinLocation(oldLocation, options.optionNames);
  try {
    const now = await pinLocation(newLocation, options.optionNames);
    try {
      return await diffPinned(old.location, now.location, options, deps);
    } finally {
      await now.dispose();
    }
  } finally {
    await old.dispose();
  }
}

async function diffPinned(
  oldLocation: PlanLocation,
  newLocation: PlanLocation,
  options: DiffOptions,
  deps: Deps,
): Promise<PlanDiff> {
  const readOptions = {
    store: options.store,
    trustedKeys: options.trustedKeys,
    noCheckSigs: options.noCheckSigs,
    optionNames: options.optionNames,
  };
  const [oldDir, newDir] = await Promise.all([
    storeDirOf(oldLocation, readOptions, deps),
    storeDirOf(newLocation, readOptions, deps),
  ]);
  const relocate = oldDir !== newDir;
  if (relocate && oldLocation.kind !== 'bundle')
    throw new NixPlanError(
      'realm',
      `cannot compare ${oldLocation.path} (store dir ${oldDir}) with a plan for the store dir ${newDir}: relocate the plan into ${oldDir} first (${relocateAdvice(options.optionNames, oldDir)}), or give the old side as a plan bundle`,
    );
  // One side after the other: one bundle's decompression window in memory at a time, and the
  // new side takes the heads of the .drv files both plans hold from the old one.
  const old = await readPlanSide(
    oldLocation,
    { ...readOptions, keepObjects: relocate, relocateTo: newDir, maxHeldBytes: options.maxHeldBytes },
    deps,
  );
  const now = await readPlanSide(
    newLocation,
    {
      ...readOptions,
      ...(options.ownNew === true && { noCheckSigs: true }),
      known: relocate ? undefined : { graph: old.graph, checks: old.checks },
    },
    deps,
  );
  let oldGraph = old.graph;
  let relocatedBytes: Map<string, Uint8Array> | undefined;
  if (relocate) {
    deps.log.info(`relocating ${oldLocation.path} from ${oldDir} to ${newDir} to compare it…`);
    ({ graph: oldGraph, bytes: relocatedBytes } = relocateSide(old, newDir, options.optionNames));
  }
  let drv: DrvDiff[] | undefined;
  if (options.drv !== undefined) {
    const pairs = drillPairs(oldGraph, now.graph, options.drv);
    const oldFiles =
      relocatedBytes ?? (await old.files(changedPaths(oldGraph, now.graph), options.maxHeldBytes));
    const newFiles = await now.files(changedPaths(now.graph, oldGraph), options.maxHeldBytes);
    const lookups = { old: new SideFiles(oldFiles), new: new SideFiles(newFiles) };
    drv = pairs.flatMap(([a, b]) => {
      const d = diffDerivations(a, b, lookups.old, lookups.new, {
        storeDir: newDir,
        ...(options.maxCompared !== undefined && { maxCompared: options.maxCompared }),
      });
      return d === undefined ? [] : [d];
    });
  }
  return diffPlans(old.side, oldGraph, now.side, now.graph, {
    relocated: relocate,
    ...(drv !== undefined && { drv }),
  });
}
