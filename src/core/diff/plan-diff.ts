// The difference of two plans: what each side is (source, realm, manifest facts), the package-level
// difference in total and per root, and optionally why one derivation differs. Pure: it takes the
// graphs the app layer read and returns one value, which is also the `--json` document
// (schema: docs/diff.schema.json, checked by `parsePlanDiff`).
import type { DrvDiff } from './derivation-diff.js';
import { parseDrvName } from './drv-name.js';
import type { PlanGraph, PlanRoot } from './graph.js';
import { diffClosures, emptyCounts, type ClosureDiff, type PackageCounts } from './packages.js';

/** The `schema` member of every diff document; bumped when its shape changes incompatibly. */
export const PLAN_DIFF_SCHEMA = 'nix-plan-diff/1';

/** What one side was read from. */
export type PlanSideKind = 'bundle' | 'drv' | 'profile';

/** A signature on a bundle's manifest and what checking it found. */
export interface SignatureInfo {
  readonly key: string;
  /** `verified` by a trusted key given; `not-checked` (no keys given); `untrusted-key` (keys given, not this one). */
  readonly status: 'verified' | 'not-checked' | 'untrusted-key';
}

/** What the manifest of a bundle side says (absent for a .drv or a profile). */
export interface BundleFacts {
  /** `sha256:<hex>` of the bundle file. */
  readonly digest: string;
  readonly checksum: string;
  readonly formatVersion: number;
  readonly tool: string;
  readonly nixVersion: string;
  readonly include: string;
  /** When the plan was evaluated (manifest v2), or undefined (v1: unknown). */
  readonly createdAt?: string;
  /** The manifest's provenance (v2), flattened to `dotted.keys` → text. */
  readonly provenance?: Readonly<Record<string, string>>;
  readonly relocatedFrom?: string;
  /** How many times it was promoted (manifest v2 `promotions`). */
  readonly promotions?: number;
  readonly signatures: readonly SignatureInfo[];
  /** Set when the side was read with `--no-check-sigs`: build outputs were not required to be proven. */
  readonly noCheckSigs?: boolean;
  /** With `noCheckSigs`: build outputs no trusted signature proves, accepted unproven. */
  readonly unproven?: number;
}

/** One side of a diff. */
export interface PlanSide {
  readonly kind: PlanSideKind;
  /** What the user named: a bundle file, a .drv path, a profile. */
  readonly source: string;
  readonly storeDir: string;
  readonly derivations: number;
  readonly systems: readonly string[];
  readonly roots: readonly PlanRoot[];
  readonly bundle?: BundleFacts;
}

/** A manifest field that differs between the sides (absent on a side: undefined there). */
export interface FieldChange {
  /** `storeDir`, `systems`, `include`, `nixVersion`, `tool`, `createdAt`, `signedBy`, `provenance.<key>`, … */
  readonly field: string;
  readonly old?: string;
  readonly new?: string;
}

/** How the realms of the sides relate. */
export interface RealmRelation {
  readonly old: string;
  readonly new: string;
  /**
   * True when the old side was relocated into the new side's realm to be compared (the sides'
   * store dirs differ); every old path shown is then the relocated one.
   */
  readonly relocated: boolean;
}

/** One root across the sides. */
export interface RootDiff {
  readonly label: string;
  readonly status: 'unchanged' | 'changed' | 'added' | 'removed';
  readonly old?: string;
  readonly new?: string;
  /** Changed roots: counts and the changed package names of its closure, by kind. */
  readonly counts?: PackageCounts;
  readonly packages?: Readonly<Record<'versions' | 'added' | 'removed' | 'rebuilt', readonly string[]>>;
  readonly derivations?: ClosureDiff['derivations'];
}

/** The difference of two plans (the `--json` document). */
export interface PlanDiff {
  readonly schema: typeof PLAN_DIFF_SCHEMA;
  readonly old: PlanSide;
  readonly new: PlanSide;
  readonly realm: RealmRelation;
  /** Both sides hold exactly the same derivations and roots (after relocation, if any). */
  readonly identical: boolean;
  readonly fields: readonly FieldChange[];
  readonly total: ClosureDiff;
  readonly roots: readonly RootDiff[];
  /** `--drv NAME`: why the derivations of that name differ (one entry per pair found). */
  readonly drv?: readonly DrvDiff[];
}

const join = (xs: readonly string[] | undefined): string | undefined =>
  xs === undefined || xs.length === 0 ? undefined : xs.join(', ');

function fieldChanges(old: PlanSide, now: PlanSide): FieldChange[] {
  const out: FieldChange[] = [];
  const compare = (field: string, a: string | undefined, b: string | undefined): void => {
    if (a !== b) out.push({ field, ...(a !== undefined && { old: a }), ...(b !== undefined && { new: b }) });
  };
  compare('storeDir', old.storeDir, now.storeDir);
  compare('systems', join(old.systems), join(now.systems));
  const a = old.bundle;
  const b = now.bundle;
  if (a === undefined || b === undefined) return out;
  compare('include', a.include, b.include);
  compare('nixVersion', a.nixVersion, b.nixVersion);
  compare('tool', a.tool, b.tool);
  compare('formatVersion', String(a.formatVersion), String(b.formatVersion));
  compare('createdAt', a.createdAt, b.createdAt);
  compare('relocatedFrom', a.relocatedFrom, b.relocatedFrom);
  compare(
    'signedBy',
    join(a.signatures.map((s) => s.key)) ?? 'unsigned',
    join(b.signatures.map((s) => s.key)) ?? 'unsigned',
  );
  const keys = [...new Set([...Object.keys(a.provenance ?? {}), ...Object.keys(b.provenance ?? {})])].sort();
  for (const k of keys) compare(`provenance.${k}`, a.provenance?.[k], b.provenance?.[k]);
  return out;
}

/** `…/hash-name.drv` → `name`. */
const drvNameOf = (p: string): string =>
  p
    .slice(p.lastIndexOf('/') + 1)
    .slice(33)
    .replace(/\.drv$/, '');

/**
 * Pairs roots: by label, then the rest by derivation name, then by package name (a root named by
 * an attribute on one side and by its .drv on the other); one unpaired root on each side is
 * paired too (a renamed single root).
 */
function pairRoots(
  old: readonly PlanRoot[],
  now: readonly PlanRoot[],
): { pairs: [PlanRoot, PlanRoot][]; removed: PlanRoot[]; added: PlanRoot[] } {
  const pairs: [PlanRoot, PlanRoot][] = [];
  let removed = [...old];
  let added = [...now];
  const pass = (key: (r: PlanRoot) => string): void => {
    const byKey = new Map<string, PlanRoot[]>();
    for (const r of added) {
      const list = byKey.get(key(r));
      if (list === undefined) byKey.set(key(r), [r]);
      else list.push(r);
    }
    const used = new Set<PlanRoot>();
    for (const r of removed) {
      const match = byKey.get(key(r))?.find((c) => !used.has(c));
      if (match === undefined) continue;
      used.add(match).add(r);
      pairs.push([r, match]);
    }
    removed = removed.filter((r) => !used.has(r));
    added = added.filter((r) => !used.has(r));
  };
  pass((r) => r.label);
  pass((r) => drvNameOf(r.drvPath));
  pass((r) => parseDrvName(drvNameOf(r.drvPath)).name);
  if (removed.length === 1 && added.length === 1) {
    pairs.push([removed[0]!, added[0]!]);
    removed = [];
    added = [];
  }
  return { pairs, removed, added };
}

function rootDiff(label: string, old: PlanRoot, now: PlanRoot, a: PlanGraph, b: PlanGraph): RootDiff {
  if (old.drvPath === now.drvPath) return { label, status: 'unchanged', old: old.drvPath, new: now.drvPath };
  const d = diffClosures(a.closure(old.drvPath), b.closure(now.drvPath));
  const names = (kinds: readonly string[]): string[] =>
    d.packages.filter((p) => kinds.includes(p.change)).map((p) => p.name);
  return {
    label,
    status: 'changed',
    old: old.drvPath,
    new: now.drvPath,
    counts: d.counts,
    derivations: d.derivations,
    packages: {
      versions: names(['upgrade', 'downgrade', 'changed']),
      added: names(['added']),
      removed: names(['removed']),
      rebuilt: names(['rebuilt']),
    },
  };
}

/**
 * The difference of two plans read into graphs (`old` already relocated into `now`'s realm when
 * their store dirs differ: then `relocated` is true and `oldSide.storeDir` still says where the
 * old plan came from).
 */
export function diffPlans(
  oldSide: PlanSide,
  old: PlanGraph,
  newSide: PlanSide,
  now: PlanGraph,
  options: { relocated: boolean; drv?: readonly DrvDiff[] },
): PlanDiff {
  const total = diffClosures(old.nodes(), now.nodes(), {
    inOld: (p) => old.has(p),
    inNew: (p) => now.has(p),
  });
  const { pairs, removed, added } = pairRoots(old.roots, now.roots);
  const roots: RootDiff[] = [
    ...pairs.map(([o, n]) => rootDiff(n.label, o, n, old, now)),
    ...removed.map((r): RootDiff => ({ label: r.label, status: 'removed', old: r.drvPath })),
    ...added.map((r): RootDiff => ({ label: r.label, status: 'added', new: r.drvPath })),
  ];
  const identical =
    total.derivations.added === 0 &&
    total.derivations.removed === 0 &&
    roots.every((r) => r.status === 'unchanged');
  return {
    schema: PLAN_DIFF_SCHEMA,
    old: oldSide,
    new: newSide,
    realm: { old: oldSide.storeDir, new: newSide.storeDir, relocated: options.relocated },
    identical,
    fields: fieldChanges(oldSide, newSide),
    total,
    roots,
    ...(options.drv !== undefined && { drv: options.drv }),
  };
}

/** Counts of a diff that has none (for summaries of an identical plan). */
export const NO_CHANGES: PackageCounts = Object.freeze(emptyCounts());
