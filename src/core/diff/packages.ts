// The package-level difference of two sets of derivations, the way nvd and `nix store
// diff-closures` show closures: derivations grouped by package name (`builtins.parseDrvName`),
// then per package a version change, an addition, a removal, or a rebuild at the same version.
import { compareVersions } from './drv-name.js';
import type { DrvNode, OutputKind } from './graph.js';

/** What happened to one package. */
export type PackageChangeKind = 'upgrade' | 'downgrade' | 'changed' | 'added' | 'removed' | 'rebuilt';

/** Every kind, in the order a diff lists them. */
export const PACKAGE_CHANGE_KINDS: readonly PackageChangeKind[] = [
  'upgrade',
  'downgrade',
  'changed',
  'added',
  'removed',
  'rebuilt',
];

/** One side of a package change. */
export interface PackageSide {
  /** Every version of the package on this side, ordered by `builtins.compareVersions` ("" = none). */
  readonly versions: readonly string[];
  /** The derivations of the package on this side that the other side does not have. */
  readonly drvs: readonly string[];
  /** Output names of those derivations (sorted, each once). */
  readonly outputs: readonly string[];
  /** Output kinds of those derivations (sorted, each once). */
  readonly outputKinds: readonly OutputKind[];
}

/** One changed package: derivations of the same name that are not the same on both sides. */
export interface PackageChange {
  /** The package name (`parseDrvName(name).name`). */
  readonly name: string;
  /**
   * `upgrade`/`downgrade`: one version was replaced by one higher/lower version; `changed`: the
   * versions changed otherwise (several, or equal by `compareVersions`); `added`/`removed`: only one side
   * has the package; `rebuilt`: same versions, other derivations (their inputs changed).
   */
  readonly change: PackageChangeKind;
  readonly old: PackageSide;
  readonly new: PackageSide;
}

/** How many packages changed in each way. */
export type PackageCounts = Record<PackageChangeKind, number>;

/** The difference of two sets of derivations. */
export interface ClosureDiff {
  readonly derivations: {
    readonly old: number;
    readonly new: number;
    /** In the new set only. */
    readonly added: number;
    /** In the old set only. */
    readonly removed: number;
  };
  readonly counts: PackageCounts;
  /** Sorted by name, then kind. */
  readonly packages: readonly PackageChange[];
}

/** Counts with every kind at zero. */
export function emptyCounts(): PackageCounts {
  return { upgrade: 0, downgrade: 0, changed: 0, added: 0, removed: 0, rebuilt: 0 };
}

/** Version changes of any direction. */
export function versionChanges(c: PackageCounts): number {
  return c.upgrade + c.downgrade + c.changed;
}

function setOf(nodes: readonly DrvNode[]): Membership {
  const paths = new Set<string>();
  for (const n of nodes) paths.add(n.path);
  return (p) => paths.has(p);
}

const byVersion = (a: string, b: string): number => compareVersions(a, b) || (a < b ? -1 : a > b ? 1 : 0);
const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Versions of the package names in `wanted`, over a whole set. */
function versionsByName(
  nodes: readonly DrvNode[],
  wanted: ReadonlyMap<string, unknown>,
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const n of nodes) {
    if (!wanted.has(n.pname)) continue;
    let set = out.get(n.pname);
    if (set === undefined) out.set(n.pname, (set = new Set()));
    set.add(n.version);
  }
  return out;
}

function side(versions: Set<string> | undefined, changed: readonly DrvNode[]): PackageSide {
  const outputs = new Set<string>();
  const kinds = new Set<OutputKind>();
  for (const n of changed)
    for (const o of n.outputs) {
      outputs.add(o.name);
      kinds.add(o.kind);
    }
  return {
    versions: [...(versions ?? [])].sort(byVersion),
    drvs: changed.map((n) => n.path).sort(byString),
    outputs: [...outputs].sort(byString),
    outputKinds: [...kinds].sort(byString),
  };
}

/** Versions on one side only: `a` without those in `b`. */
export function versionsOnlyIn(a: readonly string[], b: readonly string[]): string[] {
  const other = new Set(b);
  return a.filter((v) => !other.has(v));
}

function kindOf(old: PackageSide, now: PackageSide, inOld: boolean, inNew: boolean): PackageChangeKind {
  if (!inNew) return 'removed';
  if (!inOld) return 'added';
  const gone = versionsOnlyIn(old.versions, now.versions);
  const came = versionsOnlyIn(now.versions, old.versions);
  if (gone.length === 0 && came.length === 0) return 'rebuilt';
  if (gone.length === 1 && came.length === 1) {
    const c = compareVersions(gone[0]!, came[0]!);
    if (c < 0) return 'upgrade';
    if (c > 0) return 'downgrade';
  }
  return 'changed';
}

/** Whether a set holds a derivation path (a graph's own index, or a set made for a closure). */
export type Membership = (path: string) => boolean;

/**
 * The package-level difference of two sets of derivations (each a closure or a whole plan). Two
 * derivations are the same when their paths are: a .drv path is the hash of its whole closure, so
 * everything else is a change, and only the derivations in one set alone are looked at closely.
 * `inOld`/`inNew` say which paths each set holds (default: a set made from its nodes).
 */
export function diffClosures(
  old: readonly DrvNode[],
  now: readonly DrvNode[],
  membership: { inOld?: Membership; inNew?: Membership } = {},
): ClosureDiff {
  const inOld = membership.inOld ?? setOf(old);
  const inNew = membership.inNew ?? setOf(now);
  const groups = new Map<string, { old: DrvNode[]; new: DrvNode[] }>();
  const group = (pname: string): { old: DrvNode[]; new: DrvNode[] } => {
    let g = groups.get(pname);
    if (g === undefined) groups.set(pname, (g = { old: [], new: [] }));
    return g;
  };
  let removed = 0;
  let added = 0;
  for (const n of old)
    if (!inNew(n.path)) {
      group(n.pname).old.push(n);
      removed++;
    }
  for (const n of now)
    if (!inOld(n.path)) {
      group(n.pname).new.push(n);
      added++;
    }
  const oldVersions = versionsByName(old, groups);
  const newVersions = versionsByName(now, groups);
  const counts = emptyCounts();
  const packages: PackageChange[] = [];
  for (const [name, g] of groups) {
    const o = side(oldVersions.get(name), g.old);
    const n = side(newVersions.get(name), g.new);
    const change = kindOf(o, n, oldVersions.has(name), newVersions.has(name));
    counts[change]++;
    packages.push({ name, change, old: o, new: n });
  }
  packages.sort(
    (a, b) =>
      byString(a.name, b.name) ||
      PACKAGE_CHANGE_KINDS.indexOf(a.change) - PACKAGE_CHANGE_KINDS.indexOf(b.change),
  );
  return {
    derivations: { old: old.length, new: now.length, added, removed },
    counts,
    packages,
  };
}
